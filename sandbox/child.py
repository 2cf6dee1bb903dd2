"""The candidate's side of one run: isolate this forked process, run the program, report.

The worker forks one child per run and calls `run_child` in it. The child
applies its isolation layers in order (`_isolate`), executes the candidate,
writes exactly one JSON frame to the result pipe and exits. It never
returns into the worker's code.
"""

from __future__ import annotations

import math
import numbers
import os
import resource
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from sandbox import layers, procs
from sandbox.layers import ChildPlan
from sandbox.program import Template
from sandbox.protocol import MAX_ERROR_CHARS, encode_outcome, one_line, write_frame
from sandbox.result import Evaluation, FailureKind, Limits

CANDIDATE_FILE = "<candidate>"  # the filename that tracebacks show for candidate code
CANDIDATE_MODULE = "candidate"  # registered in sys.modules so dataclasses and pickle work
# A spec's trusted skeleton raises an exception of this class name when the
# evolved function's output is malformed (wrong shape, not numbers): the run
# is then an invalid-output failure rather than an error.
INVALID_OUTPUT_EXCEPTION = "InvalidOutput"
FSIZE_LIMIT = 1 << 20  # bytes a candidate may write to any one file
NOFILE_LIMIT = 32  # descriptors a candidate may hold open


Source = str | tuple[Template, str]  # a whole program's text, or its spec's compiled template and the function


def run_child(
    program: Source, entry: str, inputs: Mapping[str, Any], limits: Limits, result_fd: int, worker: int,
    plan: ChildPlan,
) -> NoReturn:
    """Isolate this process, score `program` on `inputs`, write the outcome to `result_fd`, exit.

    `worker` is the pid of the process that forked this one; `plan` holds
    the layers it prepared (sandbox.layers).
    """
    status = 1
    try:
        try:
            _isolate(result_fd, limits, worker, plan)
        except (OSError, ValueError) as exc:  # a prctl or setrlimit the kernel refused
            evaluation = Evaluation(failure=FailureKind.ERROR, error=one_line(f"sandbox setup failed: {exc}"))
        else:
            evaluation = _evaluate(program, entry, inputs, dict(limits.floors))
        write_frame(result_fd, encode_outcome(evaluation))
        status = 0
    finally:
        os._exit(status)  # skip atexit handlers and buffers inherited from the worker


def _isolate(result_fd: int, limits: Limits, worker: int, plan: ChildPlan) -> None:
    """Apply the per-child isolation layers, in order.

    The worker itself already runs inside the outer wrapper (namespaces,
    read-only tree, scratch tmpfs: sandbox.namespaces).
    """
    # A session and process group of its own: the worker kills the whole group
    # when the run ends, taking any processes the candidate started with it.
    os.setsid()
    # If the worker dies mid-run, nobody would kill this process at its deadline.
    procs.die_with_parent(worker)
    # Nothing inherited: no stdio to scribble on, no worker protocol pipes
    # (only the result pipe, and the Landlock ruleset until it is enforced).
    _close_descriptors({result_fd, *plan.keep_fds})
    # A private, empty, writable directory; the only one (with Landlock). The
    # worker already points TMPDIR, HOME and tempfile at it (sandbox.layers).
    os.chdir(plan.scratch)
    # Limits after the steps above, since they may allocate.
    _set_rlimits(limits, plan.limit_threads)
    # Then who we are, then what we may touch: Landlock, and seccomp last.
    layers.drop_privileges(plan)
    layers.confine(plan)


def _close_descriptors(keep: set[int]) -> None:
    """Point stdin/stdout/stderr at /dev/null and close every other descriptor not in `keep`."""
    assert min(keep) > 2, keep  # the worker holds 0-2 open, so its pipes never land there
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    # closerange is one close_range(2) call per gap, whatever RLIMIT_NOFILE is.
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _lower(which: int, soft: int, hard: int | None = None) -> None:
    """Lower a resource limit, never above the hard limit already in force."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    resource.setrlimit(which, (min(soft, hard), hard))


def _set_rlimits(limits: Limits, max_threads: int | None) -> None:
    """Cap CPU time, address space, core dumps, file sizes, open descriptors and threads."""
    # The wall-clock deadline normally fires first; the CPU limit backs it up
    # (SIGXCPU at the soft limit, SIGKILL at the hard one) for any process the
    # candidate starts that escapes the group kill.
    cpu_s = math.ceil(limits.timeout_s) + 1
    _lower(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _lower(resource.RLIMIT_CORE, 0)
    _lower(resource.RLIMIT_FSIZE, FSIZE_LIMIT)
    _lower(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    if max_threads is not None:  # counted per uid: only where the uid is the candidate's alone
        _lower(resource.RLIMIT_NPROC, max_threads)
    # The child starts as a copy of the worker (numpy and all), so the cap is
    # that baseline plus the allowance, not the allowance alone.
    _lower(resource.RLIMIT_AS, procs.vm_size_bytes() + (limits.memory_mb << 20))


def _evaluate(program: Source, entry: str, inputs: Mapping[str, Any], floors: Mapping[str, float]) -> Evaluation:
    """Run `program`'s `entry` on each input in order and collect the scores; stop below an input's floor."""
    try:
        function = _load_entry(program, entry)
        scores: dict[str, float] = {}
        outputs: dict[str, Any] = {}
        for name, value in inputs.items():
            result = function(value)
            if isinstance(result, Mapping) and "score" in result:
                # A score with the raw output it came from, for trusted re-checking.
                try:
                    outputs[name] = _plain(result.get("output"))
                except (TypeError, ValueError, RecursionError) as exc:
                    return Evaluation(failure=FailureKind.INVALID_OUTPUT,
                                      error=one_line(f"output on input {name!r} is not plain data: {exc}"))
                result = result["score"]
            score = _as_score(result)
            if score is None:
                return Evaluation(
                    failure=FailureKind.INVALID_OUTPUT,
                    error=one_line(
                        f"entry {entry!r} returned {_describe(result)} on input {name!r}, expected a finite number"
                    ),
                )
            scores[name] = score
            if name in floors and score < floors[name] and len(scores) < len(inputs):
                return Evaluation(failure=FailureKind.CULLED, error=one_line(
                    f"scored {score:.6g} on input {name!r}, below its floor {floors[name]:.6g}: "
                    f"the other {len(inputs) - len(scores)} inputs were not run"))
    except MemoryError as exc:
        return _failure(FailureKind.MEMORY, exc)
    except Exception as exc:
        kind = FailureKind.INVALID_OUTPUT if type(exc).__name__ == INVALID_OUTPUT_EXCEPTION else FailureKind.ERROR
        return _failure(kind, exc)
    except BaseException as exc:  # candidate code may raise anything, SystemExit included
        return _failure(FailureKind.ERROR, exc)
    return Evaluation(scores=scores, outputs=outputs)


def _plain(value: object, depth: int = 0) -> Any:
    """Convert an output to JSON-able plain data (numpy arrays and scalars included)."""
    if depth > 32:
        raise ValueError("nested too deeply")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} is not plain data")


def _load_entry(program: Source, entry: str) -> Callable[[Any], object]:
    """Execute `program` as a fresh module and return its function `entry`."""
    module = types.ModuleType(CANDIDATE_MODULE)
    sys.modules[CANDIDATE_MODULE] = module
    if isinstance(program, str):
        exec(compile(program, CANDIDATE_FILE, "exec"), module.__dict__)
    else:
        template, source = program
        template.load(source, module.__dict__)
    function: object = module.__dict__.get(entry)
    if function is None:
        raise NameError(f"entry {entry!r} is not defined")
    if not callable(function):
        raise TypeError(f"entry {entry!r} is not callable")
    return function


def _as_score(value: object) -> float | None:
    """Return `value` as a float if it is a real, finite number (numpy ones included), else None."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and value.shape == ():
        value = value.item()  # a 0-d array counts as the scalar it holds
    # numpy's floating and integer scalars register as numbers.Real; numpy.bool_ does not.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        score = float(value)
    except OverflowError:  # an int beyond the float range
        return None
    return score if math.isfinite(score) else None


def _describe(value: object) -> str:
    """Name what an entry returned: the value for numbers, the type otherwise."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


def _failure(kind: FailureKind, exc: BaseException) -> Evaluation:
    """Describe `exc` as 'Type: message (line N)', N counted within the candidate's program (also in `line`)."""
    try:
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    except Exception:  # a candidate's exception class with a broken __str__
        message = ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = _candidate_line(exc)
    suffix = f" (line {line})" if line else ""
    # Shortened before the suffix is added, so that the line always survives.
    return Evaluation(failure=kind, error=one_line(text, MAX_ERROR_CHARS - len(suffix)) + suffix, line=line)


def _candidate_line(exc: BaseException) -> int | None:
    """Return the innermost line of candidate code involved in `exc`, if any."""
    if isinstance(exc, SyntaxError) and exc.filename == CANDIDATE_FILE:
        return exc.lineno
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == CANDIDATE_FILE:
            line = lineno
    return line
