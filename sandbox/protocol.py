"""The sandbox wire format: length-prefixed frames and the JSON outcome codec.

A frame is a 4-byte big-endian length followed by that many bytes. Frames
from the loop to a worker hold pickles (the loop is trusted); frames that
travel back, from a candidate's child process to its worker and from the
worker to the loop, hold JSON that `decode_outcome` checks field by field,
because a candidate can write anything it likes into its result pipe.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from collections.abc import Sequence
from typing import Any

from sandbox.result import Evaluation, FailureKind

_HEADER = struct.Struct(">I")
MAX_ERROR_CHARS = 300  # error messages are one short line


MISSING_INPUTS = b'{"missing_inputs": true}'  # a worker's reply to a run whose inputs it no longer holds


class ProtocolError(Exception):
    """A frame was cut short or too large."""


class FrameTooLarge(ProtocolError):
    """A frame's header announced more bytes than the reader accepts."""


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame to a blocking file descriptor."""
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    """Read exactly `size` bytes, or fewer if the writer closes the pipe first."""
    chunks, remaining = [], size
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while remaining:
        if deadline is not None:
            wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not poller.poll(wait_ms):
                raise TimeoutError(f"no complete frame within the deadline ({size - remaining}/{size} bytes)")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int, deadline: float | None = None) -> bytes | None:
    """Read one frame; None if the pipe closed cleanly before it began.

    `deadline` is a `time.monotonic()` instant; past it, TimeoutError. A
    length above `max_bytes` raises FrameTooLarge before anything more is read.
    """
    header = _read_exact(fd, _HEADER.size, deadline)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise ProtocolError("pipe closed inside a frame header")
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the {max_bytes}-byte limit")
    payload = _read_exact(fd, size, deadline)
    if len(payload) < size:
        raise ProtocolError(f"pipe closed inside a frame ({len(payload)}/{size} bytes)")
    return payload


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Make `text` safe to log and display: printable, one line, at most `limit` characters."""
    # Candidates control error text; terminal escapes must not reach the TUI.
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def encode_outcome(evaluation: Evaluation) -> bytes:
    """Serialize an evaluation as JSON (the only thing that flows back to the loop)."""
    obj: dict[str, Any] = {"wall_time": evaluation.wall_time}
    if evaluation.failure is None:
        obj["scores"] = dict(evaluation.scores)
        if evaluation.outputs:
            obj["outputs"] = dict(evaluation.outputs)
    else:
        obj["failure"] = evaluation.failure.value
        obj["error"] = evaluation.error
        if evaluation.line is not None:
            obj["line"] = evaluation.line
    return json.dumps(obj, allow_nan=False).encode()


def _reject_constant(name: str) -> float:
    """Refuse the NaN/Infinity literals that json.loads accepts by default."""
    raise ValueError(f"non-finite constant {name}")


def _finite(value: object, what: str) -> float:
    """Return a JSON number as a finite float, or raise ValueError naming `what`."""
    if type(value) not in (int, float):  # bool is a subclass of int: excluded here
        raise ValueError(f"{what} is {type(value).__name__}, not a number")
    number = float(value)  # type: ignore[arg-type]  # an int past 1e308 raises OverflowError
    if not math.isfinite(number):
        raise ValueError(f"{what} is not finite")
    return number


def _parse(payload: bytes, names: Sequence[str]) -> Evaluation:
    """Build an Evaluation from untrusted JSON, raising ValueError on anything unexpected."""
    obj = json.loads(payload, parse_constant=_reject_constant)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    wall_time = _finite(obj.get("wall_time", 0.0), "wall_time")
    if "failure" in obj:
        kind, error, line = obj["failure"], obj.get("error", ""), obj.get("line")
        if not isinstance(kind, str) or not isinstance(error, str):
            raise ValueError("failure and error must be strings")
        if line is not None and (type(line) is not int or line < 1):
            raise ValueError("line must be a positive integer")
        return Evaluation(wall_time=wall_time, failure=FailureKind(kind), error=one_line(error), line=line)
    scores = obj.get("scores")
    if not isinstance(scores, dict) or sorted(scores) != sorted(names) or not names:
        raise ValueError("scores must map exactly the input names")
    outputs = obj.get("outputs", {})
    if not isinstance(outputs, dict) or not set(outputs) <= set(names):
        raise ValueError("outputs must map some of the input names")
    return Evaluation(
        scores={name: _finite(scores[name], f"score for {name!r}") for name in names},
        wall_time=wall_time,
        outputs={name: outputs[name] for name in names if name in outputs},
    )


def decode_outcome(payload: bytes, names: Sequence[str]) -> Evaluation:
    """Parse a JSON outcome that a candidate may have forged; scores follow `names`' order.

    Anything malformed becomes an `invalid-output` failure rather than an
    exception: a broken result is the candidate's fault, not the caller's.
    """
    try:
        return _parse(payload, names)
    except (ValueError, OverflowError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Evaluation(failure=FailureKind.INVALID_OUTPUT, error=one_line(f"malformed result: {exc}"))
