"""The vllm proposer's code path, without vLLM or a GPU.

vLLM itself is absent here: one test checks the install hint, the others
put a small stand-in `vllm` package (LLM, SamplingParams, LoRARequest with
vLLM's call signatures, recording what it is asked) on sys.path, so that
what our proposer does with the engine is checked for real: built lazily
and once, one batched call, the published sampling defaults, prefix caching,
fresh LoRA ids.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conftest import evolve
from evolve import session
from evolve.config import RunConfig
from evolve.prompt import build_prompt, render
from evolve.proposers.base import ProposerError
from evolve.proposers.lm import SamplingConfig, VLLMConfig
from evolve.proposers.vllm_engine import vllm_proposer

SEED = "def priority(item, bins):\n    return -(bins - item)\n"
PROMPTS = [build_prompt(i, (1,), (SEED,), (-1.0,), "priority", "import numpy as np\n") for i in range(3)]

STAND_IN = '''
"""A stand-in for vLLM's offline API: same names and call signatures, canned answers."""
from types import SimpleNamespace

BUILT = []  # every LLM(...) made


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class LLM:
    def __init__(self, **kwargs):
        self.kwargs, self.calls, self.count = kwargs, [], 0
        BUILT.append(self)

    def _answer(self, items, params, lora_request):
        outputs = []
        for _ in items:
            choices = []
            for _ in range(params.n):
                self.count += 1
                text = f"    return -(bins - item) * {1 + self.count / 100}\\n"
                choices.append(SimpleNamespace(text=text, token_ids=list(range(7))))
            outputs.append(SimpleNamespace(outputs=choices))
        return outputs

    def generate(self, prompts, sampling_params=None, lora_request=None, use_tqdm=True):
        self.calls.append(("generate", list(prompts), sampling_params, lora_request))
        return self._answer(prompts, sampling_params, lora_request)

    def chat(self, messages, sampling_params=None, lora_request=None, use_tqdm=True):
        self.calls.append(("chat", list(messages), sampling_params, lora_request))
        outs = self._answer(messages, sampling_params, lora_request)
        for o in outs:
            for c in o.outputs:
                c.text = "```python\\ndef priority_v1(item, bins):\\n" + c.text + "```"
        return outs
'''
LORA = '''
from dataclasses import dataclass


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str
'''


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    root = tmp_path / "site"
    (root / "vllm" / "lora").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    (root / "vllm" / "lora" / "__init__.py").write_text("")
    (root / "vllm" / "lora" / "request.py").write_text(textwrap.dedent(LORA))
    monkeypatch.syspath_prepend(str(root))
    import vllm

    yield vllm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def adapter_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8}')
    return path


def test_without_the_gpu_extra_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ProposerError, match=r"pip install 'evoloop\[gpu\]'"):
        vllm_proposer(VLLMConfig(model="Qwen/Qwen2.5-Coder-1.5B"), SamplingConfig(), seed=0)
    proc = evolve("run", "bin_packing_or", "--proposer", "vllm", "--model", "Qwen/Qwen2.5-Coder-1.5B", "--db", str(tmp_path / "v.db"))
    assert proc.returncode == 2 and "evoloop[gpu]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "v.db").exists()  # refused before any file was made


def test_engine_is_built_lazily_once_and_batches_every_prompt(stand_in: ModuleType) -> None:
    proposer = vllm_proposer(VLLMConfig(model="m", max_model_len=4096), SamplingConfig(), seed=5)
    assert stand_in.BUILT == []  # nothing at construction
    out = [p.texts for p in proposer.propose(PROMPTS, 4)]
    out2 = proposer.propose(PROMPTS[:1], 4)
    [llm] = stand_in.BUILT
    assert llm.kwargs["enable_prefix_caching"] is True and llm.kwargs["model"] == "m" and llm.kwargs["seed"] == 5
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_model_len"] == 4096
    kind, prompts, params, lora = llm.calls[0]
    assert kind == "generate" and prompts == [render(p, "completion").text for p in PROMPTS] and lora is None  # one call for the whole batch
    assert (params.n, params.temperature, params.top_p) == (4, 1.0, 0.95) and "\ndef " in params.stop
    assert len(out) == 3 and all(len(o) == 4 for o in out) and len(out2) == 1
    assert out[0][0] == 'def priority_v1(item, bins):\n    """Improved version of `priority_v0`."""\n    return -(bins - item) * 1.01\n'
    assert proposer.generated_tokens == 7 * 4 * 4
    assert llm.calls[1][2].seed != params.seed  # a new seed per batch


def test_chat_format_uses_llm_chat(stand_in: ModuleType) -> None:
    proposer = vllm_proposer(VLLMConfig(model="m"), SamplingConfig(format="chat"), seed=0)
    out = [p.texts for p in proposer.propose(PROMPTS[:2], 1)]
    kind, conversations, params, _ = stand_in.BUILT[0].calls[0]
    assert kind == "chat" and [m["role"] for m in conversations[0]] == ["system", "user"] and params.stop is None
    assert out[0][0].startswith("```python\ndef priority_v1(")


def test_lora_adapters_switch_with_fresh_ids_without_a_restart(stand_in: ModuleType, tmp_path: Path) -> None:
    first, second = adapter_dir(tmp_path / "round1"), adapter_dir(tmp_path / "round2")
    proposer = vllm_proposer(VLLMConfig(model="m", adapter=str(first)), SamplingConfig(), seed=0)
    proposer.propose(PROMPTS[:1], 1)
    proposer.use_adapter(second)
    proposer.propose(PROMPTS[:1], 1)
    proposer.use_adapter(first)  # back to an earlier directory: still a new id (its files may have changed)
    proposer.propose(PROMPTS[:1], 1)
    [llm] = stand_in.BUILT
    requests = [call[3] for call in llm.calls]
    assert [(r.lora_name, r.lora_int_id, r.lora_path) for r in requests] == [
        ("round1", 1, str(first)), ("round2", 2, str(second)), ("round1", 3, str(first)),
    ]
    assert proposer.adapter == str(first)
    with pytest.raises(ProposerError, match="adapter_config.json"):
        proposer.use_adapter(tmp_path)


def test_a_mixed_run_records_proposer_model_and_adapter(stand_in: ModuleType, tmp_path: Path) -> None:
    adapter = adapter_dir(tmp_path / "lora")
    config = RunConfig().replace(
        proposer="vllm:0.5,gp:0.5", loop={"budget": 48, "prompts_per_batch": 4, "samples_per_prompt": 2},
        islands={"num_islands": 2}, sandbox={"workers": 2, "timeout_s": 10.0}, vllm={"model": "coder-1b", "adapter": str(adapter)},
    )
    archive, spec = session.new_run("bin_packing_or", tmp_path / "m.db", config)
    with session.pool_for(config) as pool:
        evolution = session.open_evolution(archive, spec, config, pool, fresh=True)
        evolution.run()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = set(conn.execute("SELECT proposer, model, adapter FROM programs WHERE proposer != 'seed'"))
    models = {p: (m, a) for p, m, a in rows}
    assert set(models) == {"vllm", "gp"}
    assert models["vllm"] == ("coder-1b", str(adapter))
    assert models["gp"][1] == "" and models["gp"][0].startswith("gp(")
    assert evolution.stats.tokens > 0
