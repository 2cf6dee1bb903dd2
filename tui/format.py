"""How the TUI writes numbers: one place, so tests can format the expected text the same way."""

from __future__ import annotations


def score(value: float | None) -> str:
    """Return a score with 6 significant digits, or '-' when there is none."""
    return "-" if value is None else f"{value:.6g}"


def share(value: float) -> str:
    return f"{value:.1%}"


def rate(value: float) -> str:
    return f"{value:.1f}"


def count(value: int) -> str:
    return f"{value:,}"


def duration(seconds: float) -> str:
    """Return h:mm:ss (d h:mm:ss past a day)."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def temperature(value: float) -> str:
    return f"{value:.4g}"


def island(value: int | None) -> str:
    """Return an island number; the seed (island None) is on all of them."""
    return "all" if value is None else str(value)
