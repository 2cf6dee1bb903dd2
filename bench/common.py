"""What the benchmark scripts share: where results go and how the tables of bench/RESULTS.md are replaced.

The scripts run as `python bench/<name>.py`, so this folder is on their path.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from evolve import session
from evolve.config import RunConfig
from evolve.loop import Stats
from evolve.spec import Spec
from sandbox import SandboxPool

RESULTS_PAGE = Path(__file__).resolve().parent / "RESULTS.md"  # the generated tables; the README links it


def replace_results_section(marker: str, markdown: str, page: Path = RESULTS_PAGE) -> bool:
    """Put `markdown` between `<!-- MARKER:start -->` and `<!-- MARKER:end -->` in bench/RESULTS.md.

    Returns False, changing nothing, when the page lacks the markers.
    """
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = page.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    tmp = page.with_name(page.name + ".tmp")  # atomic: a crash leaves the old page whole
    tmp.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")
    os.replace(tmp, page)
    return True


# The name the scripts used while these tables lived in the README; bench_ibp.py still imports it.
replace_readme_section = replace_results_section


def time_evaluation(spec: Spec, function: str, split: str, pool: SandboxPool, repeats: int) -> dict[str, float]:
    """Time one evaluation of `function` on a whole split: in-process (the simulator alone) and sandboxed.

    Returns the medians over `repeats`, in milliseconds. `function` is the
    spec's own code (its seed or a baseline), so running it here is safe.
    """
    program = spec.program(function)
    namespace: dict[str, Any] = {}
    exec(compile(program, f"<{spec.name}>", "exec"), namespace)  # trusted: the spec's own function
    inputs = spec.inputs(split)
    direct, sandboxed = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for value in inputs.values():
            namespace[spec.entry](value)
        direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluation = pool.evaluate(program, spec.entry, inputs)
        sandboxed.append(time.perf_counter() - start)
        assert evaluation.ok, evaluation.error
    return {"in_process_ms": 1e3 * statistics.median(direct), "sandbox_ms": 1e3 * statistics.median(sandboxed)}


def gp_run(spec: Spec, seed: int, samples: int, workers: int, db: Path, test_pool: SandboxPool,
           time_limit_s: float | None = None) -> tuple[dict[str, Any], Stats, float]:
    """Evolve `spec` with the GP default; return its best program scored on test, the run's stats and seconds."""
    config = RunConfig().replace(loop={"budget": samples, "seed": seed, "time_limit_s": time_limit_s},
                                 sandbox={"workers": workers})
    archive, _ = session.new_run(spec.name, db, config)
    started = time.perf_counter()
    with session.pool_for(config) as pool:
        evolution = session.open_evolution(archive, spec, config, pool, fresh=True)
        evolution.run()
    elapsed = time.perf_counter() - started
    [best] = session.best_programs(archive, spec, 1, "test", test_pool)
    return best.to_json(), evolution.stats, elapsed


# A one-line problem: f(x) close to 3 on three numbers. Evaluating it costs little beyond the sandbox's
# own fork and result, which is what the overhead benchmarks measure.
TRIVIAL_SPEC = '''"""Get f(x) close to 3 for every input."""
import evolve


@evolve.run
def evaluate(x: float) -> float:
    return -abs(f(x) - 3.0)


@evolve.evolve
def f(x: float) -> float:
    """Return a number."""
    return x


INPUTS = {"a": 1.0, "b": 2.0, "c": 4.0}
'''
