"""The adapter registry: one `adapters` row per LoRA round, and the evidence of what each did.

    rows = adapter_rows(archive.conn)   # what `evolve status --json` and the TUI show

The table is written by the loop alone, in its batch transaction (or by
`evolve finetune` when no loop holds the archive). A row points at the
adapter's directory and copies its metadata (base model, data size, loss
curve, duration, parent adapter) plus the samples at which the round
started and at which the loop switched to it.

Evidence, per round, over its window (from the sample at which the
proposer switched to it until the next round's switch, or now): the valid
share, mean and best score of the programs the adapter wrote, and the share
that beat the best parent shown in their prompt, next to the same figures of
the base model's programs (the control arm: the same proposer without the
adapter) over the same window. Round 0 is the base model before any round.
Samples rejected before evaluation (unparseable) are not counted.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

TABLE = "adapters"
COLUMNS: dict[str, str] = {  # name -> SQLite type, in the order the TUI shows them
    "round": "INTEGER PRIMARY KEY", "path": "TEXT", "method": "TEXT", "base_model": "TEXT", "examples": "INTEGER",
    "steps": "INTEGER", "base_loss": "REAL", "adapter_loss": "REAL", "duration_s": "REAL", "parent": "TEXT",
    "data_until_sample": "INTEGER", "started_sample": "INTEGER", "finished_sample": "INTEGER",
    "loss_curve": "TEXT", "created": "REAL",
}
ARM_FIELDS = ("programs", "valid_share", "mean_score", "best_score", "beat_parent")


def has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None


def add_adapter(conn: sqlite3.Connection, meta: Mapping[str, Any], started: int, finished: int) -> dict[str, Any]:
    """Insert a round's row (inside the caller's transaction) and return it."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({', '.join(f'{k} {t}' for k, t in COLUMNS.items())})")
    row = {k: meta.get(k) for k in COLUMNS}
    row.update(started_sample=started, finished_sample=finished, created=time.time(), loss_curve=json.dumps(meta.get("loss_curve", [])))
    conn.execute(f"INSERT INTO {TABLE} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    return row


def adapters(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return the rounds, oldest first (none when the table does not exist)."""
    if not has_table(conn):
        return []
    cur = conn.execute(f"SELECT * FROM {TABLE} ORDER BY round")
    names = [c[0] for c in cur.description]
    rows = [dict(zip(names, r)) for r in cur]
    for r in rows:
        r["loss_curve"] = json.loads(r.get("loss_curve") or "[]")
    return rows


def latest(conn: sqlite3.Connection) -> dict[str, Any] | None:
    rows = adapters(conn)
    return rows[-1] if rows else None


def evidence(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return, per round (0: the base model before any), the adapter's figures and the base model's over its window."""
    rounds = [r for r in adapters(conn) if r.get("path") and r.get("finished_sample") is not None]
    if not rounds:
        return []
    proposers = [p for (p,) in conn.execute(
        f"SELECT DISTINCT proposer FROM programs WHERE adapter IN (SELECT path FROM {TABLE})"
    )] or ["transformers", "vllm", "openai"]
    ends = [r["finished_sample"] for r in rounds[1:]] + [None]
    out = [{"round": 0, "adapter": "", "from_sample": 0, "to_sample": rounds[0]["finished_sample"],
            **_prefixed("base", _arm(conn, proposers, "", 0, rounds[0]["finished_sample"]))}]
    for r, end in zip(rounds, ends, strict=True):
        adapter = _arm(conn, proposers, r["path"], r["finished_sample"], end)
        base = _arm(conn, proposers, "", r["finished_sample"], end)
        out.append({"round": r["round"], "adapter": r["path"], "from_sample": r["finished_sample"], "to_sample": end,
                    **_prefixed("adapter", adapter), **_prefixed("base", base)})
    return out


def _arm(conn: sqlite3.Connection, proposers: list[str], adapter: str, lo: int, hi: int | None) -> dict[str, Any]:
    """Figures of the programs one arm wrote in samples [lo, hi)."""
    marks = ",".join("?" * len(proposers))
    window = "p.sample >= ?" + ("" if hi is None else " AND p.sample < ?")
    args: list[Any] = [*proposers, adapter or "", lo] + ([] if hi is None else [hi])
    n, valid, mean, best, beat = conn.execute(
        "SELECT COUNT(*), COUNT(p.score), AVG(p.score), MAX(p.score),"
        " SUM(p.score IS NOT NULL AND p.score > (SELECT MAX(q.score) FROM json_each(p.parents) j JOIN programs q ON q.id = j.value))"
        f" FROM programs p WHERE p.proposer IN ({marks}) AND COALESCE(p.adapter, '') = ? AND {window}",
        args,
    ).fetchone()
    return {"programs": n, "valid_share": valid / n if n else None, "mean_score": mean, "best_score": best,
            "beat_parent": (beat or 0) / n if n else None}


def _prefixed(prefix: str, arm: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in arm.items()}


SHOWN = ("round", "path", "method", "examples", "steps", "base_loss", "adapter_loss", "duration_s", "started_sample",
         "finished_sample")


def shown_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return each round, newest first, with its evidence: what `evolve tui` shows in its adapters view."""
    by_round = {e["round"]: e for e in evidence(conn)}
    out = []
    for row in reversed(adapters(conn)):
        figures = by_round.get(row["round"], {})
        out.append({**{k: row.get(k) for k in SHOWN},
                    **{f"{arm}_{k}": figures.get(f"{arm}_{k}") for arm in ("adapter", "base") for k in ARM_FIELDS}})
    return out
