"""The archive's one exception: a file that will not do as a run archive."""

from __future__ import annotations


class ArchiveError(Exception):
    """A file that is not a usable evoloop archive, or a program it does not hold."""
