"""Run configuration: TOML, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from evolve.config import ConfigError, RunConfig, load_config


def test_toml_and_overrides_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('proposer = "gp"\n[loop]\nbudget = 500\n[islands]\nnum_islands = 3\ncluster_score = "last"\n'
                    "[sandbox]\ntimeout_s = 5\n")
    config = load_config(path)
    assert (config.loop.budget, config.islands.num_islands, config.islands.cluster_score) == (500, 3, "last")
    assert config.sandbox.timeout_s == 5.0 and isinstance(config.sandbox.timeout_s, float)
    changed = config.replace(loop={"seed": 4})
    assert (changed.loop.seed, changed.loop.budget) == (4, 500)
    assert RunConfig.from_dict(changed.to_dict()) == changed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[loop]\nbudjet = 5\n", "c.toml: loop: unknown key(s) ['budjet']"),
        ("[loop]\nbudget = 'many'\n", "c.toml: loop.budget: 'many' is not a valid int"),
        ("[islands]\ncluster_score = 'median'\n", "islands.cluster_score: 'median' is not one of 'mean', 'last'"),
        ("[islands]\nnum_islands = 0\n", "num_islands"),
        ("[loop\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value)
