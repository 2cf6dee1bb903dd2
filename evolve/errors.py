"""The user-facing errors every part of evoloop may raise; the CLI turns each into one line and exit status 2.

They live here, apart from the modules that raise them, so that a part's
configuration can refuse a bad value without importing the run's
configuration (which imports every part).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value or file that cannot be used."""


def require(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless `ok`: the check of a config dataclass's `__post_init__`."""
    if not ok:
        raise ConfigError(message)
