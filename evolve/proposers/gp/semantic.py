"""Semantic fingerprints of GP expressions: the same outputs on a fixed probe set, the same program.

    probe = Probe.for_signature(signature)  # None where the terminals cannot be probed
    key = probe.fingerprint("np.minimum(bins - item, 0.5)")

Source dedupe sees `bins - item` and `np.minimum(bins - item, bins - item)`
as two programs; GP writes such pairs all the time, and each would cost a
sandbox evaluation for a score already known. The probe draws, once and
from a fixed seed, PROBES assignments of the function's arguments, scalars
and arrays of ARRAY_LENGTH values, of both signs and magnitudes from 1e-2
to 1e3 (bin capacities, counts and fitted constants alike), and evaluates
an expression with numpy on each; the fingerprint is a digest of the outputs
rounded to DIGITS significant digits, nan and inf included. Expressions that
agree on every probe are taken as one program: a heuristic, so two functions
that differ only where no probe falls (a threshold beyond 1e3) count as one.

Only the GP's own expressions are evaluated here, over its own operators
and the problem's declared terminals (spec code, which runs in the loop's
process anyway); a candidate's code never is. A signature with a terminal
that does not evaluate on the probes alone (cap sets' `np.array(el)`, where
`el` is not an argument the GP knows) gets no probe.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np

from evolve.proposers.gp.primitives import MAX_NUM_PARAMS, PARAMS_NAME, Signature

PROBES = 6  # argument assignments per expression (each scalar argument gets this many values)
ARRAY_LENGTH = 32  # values of each array argument per assignment
DIGITS = 9  # significant digits compared: float round-off of equal expressions stays below
MEMORY = 1 << 17  # fingerprints a proposer remembers (oldest forgotten first): a flat memory over days
_SEED = 20231214  # fixed: the same probes in every run, every process


def _values(rng: np.random.Generator, size: int | None) -> Any:
    magnitude = 10.0 ** rng.uniform(-2.0, 3.0, size)
    sign = rng.choice([-1.0, 1.0], size)
    return magnitude * sign


class Probe:
    """The fixed argument assignments of one signature, and fingerprints of expressions over them."""

    def __init__(self, assignments: list[dict[str, Any]]) -> None:
        self._assignments = assignments

    @classmethod
    def for_signature(cls, sig: Signature) -> Probe | None:
        """Return the probe of `sig`, or None when one of its terminals does not evaluate on it."""
        rng = np.random.default_rng(_SEED)
        assignments = []
        for _ in range(PROBES):
            names: dict[str, Any] = {name: _values(rng, ARRAY_LENGTH if t == "array" else None) for name, t in sig.args}
            names.setdefault(PARAMS_NAME, _values(rng, MAX_NUM_PARAMS))  # LLM-SR's `params[i]` terminals
            assignments.append(names)
        probe = cls(assignments)
        for source, _type in sig.terminals:
            if probe.fingerprint(source) is None:
                return None
        return probe

    def fingerprint(self, expression: str) -> bytes | None:
        """Return the digest of `expression`'s outputs on the probes, None if it does not evaluate."""
        try:
            code = compile(expression, "<gp>", "eval")
        except (SyntaxError, ValueError):
            return None
        digest = hashlib.blake2b(digest_size=16)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for names in self._assignments:
                try:
                    value = np.asarray(eval(code, {"np": np, "__builtins__": {}}, dict(names)), dtype=np.float64)
                except Exception:  # an expression the probe cannot run: no fingerprint, no dedupe
                    return None
                # '%g' text: equal for values within DIGITS digits, and one spelling for every nan.
                text = ",".join(f"{v:.{DIGITS}g}" for v in value.ravel().tolist())
                digest.update(f"{value.shape}:{text};".encode())
        return digest.digest()


class Seen:
    """A bounded set of fingerprints: the newest MEMORY kept."""

    def __init__(self, limit: int = MEMORY) -> None:
        self._keys: dict[bytes, None] = {}
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        if len(self._keys) > self._limit:
            del self._keys[next(iter(self._keys))]

