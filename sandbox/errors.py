"""Exceptions for pool-level sandbox problems (a candidate's own failures are Evaluations)."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox itself failed: a worker could not start or answer."""


class WorkerLost(SandboxError):
    """A worker process died or stopped answering in the middle of a request."""
