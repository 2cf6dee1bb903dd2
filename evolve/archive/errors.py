"""The archive's exceptions: a file that will not do as a run archive, and a disk that filled up."""

from __future__ import annotations


class ArchiveError(Exception):
    """A file that is not a usable evoloop archive, or a program it does not hold."""


class DiskFull(ArchiveError):
    """A write found the disk (or the archive's quota) full; the batch was rolled back, what committed before is kept."""
