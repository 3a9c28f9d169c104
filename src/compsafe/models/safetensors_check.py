"""Check a safetensors file's structure before handing it to a loader.

The safetensors loader trusts the 8-byte header length: a file claiming a multi-GB header, or one cut short
by an interrupted copy, fails deep inside the loader with an exception that names neither the file nor the
fix. Reading only the header (never the tensors) is enough to tell: the header must fit in the file, parse
as a JSON object, and every tensor's byte range must lie inside the data section and match its dtype and
shape.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from compsafe.errors import ModelLoadError

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors format's own limit
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}


def _bad(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(f"{path} is not a valid safetensors file ({why}): re-download or re-export the weights")


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """The tensor table of ``path`` (name -> dtype, shape, data_offsets), checked against the file's size."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"only {size} bytes, shorter than the 8-byte header length")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES or header_len > size - 8:
                raise _bad(path, f"header claims {header_len} bytes, the file has {size}")
            raw = handle.read(header_len)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(path, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    data_size = size - 8 - header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _bad(path, f"entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        valid_shape = isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
        valid_offsets = isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
        if dtype not in DTYPE_BYTES or not valid_shape or not valid_offsets:
            raise _bad(path, f"entry {name!r} has an unreadable dtype, shape or offsets")
        start, end = offsets
        if not 0 <= start <= end <= data_size:
            raise _bad(path, f"tensor {name!r} lies beyond the end of the file (truncated?)")
        if end - start != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise _bad(path, f"tensor {name!r} holds {end - start} bytes, its dtype and shape need more or fewer")
        tensors[name] = entry
    return tensors


def check_safetensors_file(path: Path) -> None:
    """Raise a one-line ``ModelLoadError`` when ``path`` is truncated or its header is malformed."""
    read_safetensors_header(path)


def check_safetensors_folder(folder: Path) -> None:
    """Check every ``*.safetensors`` file of a model folder (headers only; seconds even for large models)."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors_file(path)
