"""Read a GGUF file's header: its metadata and the names and shapes of its tensors, without the weights.

    python -c "from evolve.gguf_info import read_header; print(read_header('m.gguf').architecture)"

`gguf.GGUFReader` parses every array element into numpy views (about 14 s
for Gemma 3's 262,144-token vocabulary on a loaded 2-core machine); this
reader skips arrays it is not asked for, so a header reads in well under a
second. The layout (GGUF v2 and v3, little-endian): magic ``GGUF``, u32
version, u64 tensor count, u64 key/value count, the key/value pairs, then
one record per tensor (name, dims in ggml order, type, offset).
"""

from __future__ import annotations

import logging
import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"GGUF"

Scalar = int | float | bool | str

# GGUF value type -> struct format of one element (strings and arrays are handled apart).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    """A file that is not a readable GGUF file."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's record: `shape` in ggml order (ne0 first, i.e. reversed from numpy's)."""

    shape: tuple[int, ...]
    type: int  # a ggml type id (gguf.GGMLQuantizationType)


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself; arrays appear only as their lengths."""

    version: int
    metadata: Mapping[str, Scalar]
    array_lengths: Mapping[str, int]
    tensors: Mapping[str, TensorInfo] = field(repr=False)

    @property
    def architecture(self) -> str:
        """Return `general.architecture` ("" when absent)."""
        return str(self.metadata.get("general.architecture", ""))

    @property
    def file_type(self) -> str:
        """Return `general.type`: "model", "adapter", ... ("model" when absent, as in older files)."""
        return str(self.metadata.get("general.type", "model"))

    @property
    def chat_template(self) -> str:
        """Return the model's own chat template ("" for a base model without one)."""
        return str(self.metadata.get("tokenizer.chat_template", ""))

    def arch_value(self, key: str) -> Scalar | None:
        """Return `<architecture>.<key>`, e.g. arch_value("block_count")."""
        return self.metadata.get(f"{self.architecture}.{key}")


def is_gguf(path: str | Path) -> bool:
    """Tell whether `path` is a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def read_header(path: str | Path) -> GGUFHeader:
    """Read the metadata and tensor records of the GGUF file at `path`; raise GGUFError if it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _Parser(buf, path).header()
    except (OSError, ValueError) as e:  # ValueError: mmap of an empty file
        raise GGUFError(f"cannot read {path}: {e}") from None
    except (struct.error, IndexError, UnicodeDecodeError):
        raise GGUFError(f"{path} is not a valid GGUF file (truncated or corrupt header)") from None


class _Parser:
    """A cursor over the mapped file."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def unpack(self, fmt: str) -> int | float | bool:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = int(self.unpack("<Q"))
        if self.pos + n > len(self.buf):
            raise IndexError("string past the end")
        s = self.buf[self.pos : self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def skip_array(self, elem: int, count: int) -> None:
        if elem in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[elem]) * count
        elif elem == _STRING:
            for _ in range(count):  # each element: u64 length + bytes
                (n,) = struct.unpack_from("<Q", self.buf, self.pos)
                self.pos += 8 + n
        elif elem == _ARRAY:
            for _ in range(count):
                inner, n = self.unpack("<I"), self.unpack("<Q")
                self.skip_array(int(inner), int(n))
        else:
            raise struct.error(f"unknown array element type {elem}")
        if self.pos > len(self.buf):
            raise IndexError("array past the end")

    def header(self) -> GGUFHeader:
        if self.buf[:4] != MAGIC:
            raise GGUFError(f"{self.path} is not a GGUF file (it does not start with the GGUF magic)")
        self.pos = 4
        version = int(self.unpack("<I"))
        if version < 2:
            raise GGUFError(f"{self.path} is GGUF version {version}; only versions 2 and later are read")
        n_tensors, n_kv = int(self.unpack("<Q")), int(self.unpack("<Q"))
        metadata: dict[str, Scalar] = {}
        arrays: dict[str, int] = {}
        for _ in range(n_kv):
            key = self.string()
            vtype = int(self.unpack("<I"))
            if vtype == _STRING:
                metadata[key] = self.string()
            elif vtype == _ARRAY:
                elem, count = int(self.unpack("<I")), int(self.unpack("<Q"))
                arrays[key] = count
                self.skip_array(elem, count)
            elif vtype in _SCALARS:
                metadata[key] = self.unpack(_SCALARS[vtype])
            else:
                raise struct.error(f"unknown value type {vtype} for {key}")
        tensors: dict[str, TensorInfo] = {}
        for _ in range(n_tensors):
            name = self.string()
            n_dims = int(self.unpack("<I"))
            shape = tuple(int(self.unpack("<Q")) for _ in range(n_dims))
            ttype = int(self.unpack("<I"))
            self.unpack("<Q")  # data offset
            tensors[name] = TensorInfo(shape, ttype)
        log.debug("read GGUF header of %s: %d keys, %d tensors", self.path, n_kv, n_tensors)
        return GGUFHeader(version, metadata, arrays, tensors)
