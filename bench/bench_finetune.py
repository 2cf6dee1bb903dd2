"""Time one LoRA round on CPU as the loop runs it: data from a real GP run, a tiny GPT-2, a child process.

    python bench/bench_finetune.py [--samples 400] [--steps 60]

A GP run on bin_packing_weibull fills an archive; then one SFT round is
trained on it with `python -m finetune.train` (what the loop starts), and
its time is split: the child's whole wall time (interpreter, imports, data,
training, saving) and the training steps alone. The model is the tests'
tiny GPT-2 (2 layers, 32 wide), so the figures show the round's fixed costs
on this machine, not what a real model costs on a GPU. Results go to
bench/results/2026-11-22-2cpu-x86_64-finetune.json and bench/RESULTS.md's
`finetune` section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import replace_results_section

from evolve import session
from evolve.archive import Archive
from evolve.config import RunConfig
from finetune.config import FinetuneConfig
from finetune.train import RoundRequest, build_data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "2026-11-22-2cpu-x86_64-finetune.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=600, help="GP samples that fill the archive")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps of the round")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_lm import tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = RunConfig().replace(loop={"budget": args.samples, "seed": 0}, sandbox={"workers": 2})
        archive, spec = session.new_run("bin_packing_weibull", work / "run.db", config)
        with session.pool_for(config) as pool:
            session.open_evolution(archive, spec, config, pool, fresh=True).run()
        archive.close()
        model = tiny_model(work / "tiny")
        finetune = FinetuneConfig(steps=args.steps, top_share=1.0)
        reader = Archive.open(work / "run.db", readonly=True)
        started = time.perf_counter()
        records, _ = build_data(reader, finetune)
        data_ms = 1e3 * (time.perf_counter() - started)
        reader.close()
        request = RoundRequest(str(work / "run.db"), str(model), str(work / "round_1"), 1, "", finetune)
        (work / "round_1.json").write_text(json.dumps(request.to_json()))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "finetune.train", str(work / "round_1.json")], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        meta = json.loads((work / "round_1" / "meta.json").read_text())
    result = {
        "machine": f"{os.cpu_count()} cpu {platform.machine()}", "problem": "bin_packing_weibull", "gp_samples": args.samples,
        "model": "tiny GPT-2 (2 layers, n_embd 32, 512-token BPE)", "examples": meta["examples"], "steps": meta["steps"],
        "data_ms": round(data_ms, 1), "child_wall_s": round(wall, 2), "round_s": round(meta["duration_s"], 2),
        "base_loss": round(meta["base_loss"], 4), "adapter_loss": round(meta["adapter_loss"], 4),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    table = (
        "| GP samples | examples | steps | data built | child process, whole | round (data, training, saving) | loss of the selected completions |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        f"| {args.samples} | {meta['examples']} | {meta['steps']} | {data_ms:.0f} ms | {wall:.1f} s | {meta['duration_s']:.1f} s "
        f"| {meta['base_loss']:.3f} (base) -> {meta['adapter_loss']:.3f} |"
    )
    print(table)
    replace_results_section("finetune", table)


if __name__ == "__main__":
    main()
