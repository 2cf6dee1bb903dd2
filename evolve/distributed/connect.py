"""Join a Ray cluster (or start Ray on this machine) for a run, and leave it afterwards."""

from __future__ import annotations

import logging
import socket

import ray

from sandbox import SandboxError


def connect(address: str | None) -> bool:
    """Connect this process to Ray at `address` (None: start a local instance); return whether we did.

    A process already connected (a library user's own `ray.init`) is left as
    it is, and `disconnect` then leaves it connected.
    """
    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
    try:
        # No dashboard (a web server this run does not need); actors' logs stay in Ray's log
        # directory rather than interleaving with the progress display.
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SandboxError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}") from exc
    return True


def disconnect(owned: bool) -> None:
    """Leave Ray if `connect` joined it (stopping the local instance it started)."""
    if owned and ray.is_initialized():
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail at once on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    if address == "auto" or "://" in address or ":" not in address:
        return  # `auto` and ray:// clients fail fast on their own
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except ValueError:
        raise SandboxError(f"--ray-address {address!r}: expected HOST:PORT, auto or ray://HOST:PORT") from None
    except OSError as exc:
        raise SandboxError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; "
                           "is `ray start --head` running there?") from None
