"""Get a model's base weights back after a variant without holding a second copy of them in memory.

A variant is built in place, so the base must be restored after it. Holding a CPU copy of every parameter
doubles the memory of a run. Instead the snapshot keeps a digest of every tensor (what finds the tensors a
recipe changed: only those are rewritten) and, for each parameter, where its exact base values can be read
again: the safetensors file the model was loaded from, when that file reproduces it bit for bit (checked
once, tensor by tensor, with the dtype cast the loader applied), else a spill file written once (a GGUF or hub
model, renamed keys), else an in-memory copy when no spill folder is given. Files are opened when the snapshot
is taken and kept open (a folder replaced during the run still yields the original bytes) and read with plain
positioned reads into a buffer of one tensor, never memory-mapped: touched pages of a mapping count in the
process's resident memory until it is closed. A restore therefore holds one tensor at a time, and the final
per-tensor digest check makes it exact or loud (a ``RuntimeError``: a bug, never a user error).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from compsafe.integrity import state_digest

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


CHECK_SLICE = 1 << 22  # elements compared at a time when checking that a file reproduces a tensor


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor's bytes lie in a file, and how to read them back.

    ``file`` is the file opened when the snapshot was taken and kept open: a model folder replaced while a run
    goes on (a catalog model re-materialized by another process writes a new folder and renames it) leaves this
    handle on the original bytes, so the restore is still exact. A file overwritten in place is caught by the
    digest check.
    """

    path: Path
    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    file: BinaryIO = field(compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()

    def read(self) -> torch.Tensor:
        """The tensor, read with one positioned read into a fresh buffer (no mapping stays behind)."""
        return self.read_flat(0, math.prod(self.shape)).reshape(self.shape)

    def read_flat(self, start: int, count: int) -> torch.Tensor:
        """Elements ``start .. start + count`` of the flattened tensor (a slice: the whole tensor is never needed
        at once to check it)."""
        size = torch.empty((), dtype=self.dtype).element_size()
        buffer = torch.empty(count * size, dtype=torch.uint8)
        self.file.seek(self.offset + start * size)
        view = memoryview(buffer.numpy())
        done = 0
        while done < len(view):
            n = self.file.readinto(view[done:])
            if not n:
                raise RuntimeError(f"{self.path} ended before tensor bytes at {self.offset} (changed on disk?)")
            done += n
        return buffer.view(self.dtype)


def tensor_digest(name: str, tensor: torch.Tensor) -> str:
    """sha256 over name, dtype, shape and bytes (``integrity.state_digest``'s fields, one tensor), no copy on CPU."""
    digest = hashlib.sha256(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
    flat = tensor.detach().contiguous().cpu().reshape(-1)
    if flat.numel():
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def model_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, tensor, is_parameter) for every parameter and buffer, tied tensors once (``state_digest``'s order)."""
    seen: set[int] = set()
    named = [(n, p, True) for n, p in model.named_parameters()] + [(n, b, False) for n, b in model.named_buffers()]
    for name, tensor, is_parameter in named:
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        yield name, tensor, is_parameter


def safetensors_index(files: Iterable[Path], opened: list[BinaryIO]) -> dict[str, StoredTensor]:
    """name -> location of every tensor in ``files`` (headers only); each file is opened once and appended to
    ``opened`` (the caller closes them)."""
    from compsafe.models.safetensors_check import read_safetensors_header

    index: dict[str, StoredTensor] = {}
    for path in files:
        path = Path(path)
        handle = path.open("rb", buffering=0)
        opened.append(handle)
        data_start = 8 + int.from_bytes(handle.read(8), "little")
        for name, entry in read_safetensors_header(path).items():
            if entry["dtype"] in SAFETENSORS_DTYPES:
                dtype, offset = SAFETENSORS_DTYPES[entry["dtype"]], data_start + entry["data_offsets"][0]
                index[name] = StoredTensor(path, offset, dtype, tuple(entry["shape"]), handle)
    return index


def reproduces(stored: StoredTensor, tensor: torch.Tensor) -> bool:
    """Whether reading ``stored`` and casting it as the loader did gives ``tensor`` bit for bit."""
    if stored.shape != tuple(tensor.shape):
        return False
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    for start in range(0, flat.numel(), CHECK_SLICE):  # slices: an embedding is the run's largest transient
        count = min(CHECK_SLICE, flat.numel() - start)
        value = stored.read_flat(start, count).to(tensor.dtype)
        if not torch.equal(value.view(torch.uint8), flat[start : start + count].view(torch.uint8)):
            return False
    return True


class WeightSnapshot:
    """Per-tensor digests of a base model and where each parameter's base values can be read again.

    ``weight_files``: the safetensors files the model was loaded from (each parameter they reproduce exactly is
    re-read from them). ``spill``: a folder on disk (True: the system's temporary folder, ``TMPDIR``) for the
    parameters they do not reproduce (one file, written once, unlinked at once and read through its open handle);
    without it those are kept as CPU copies.
    """

    def __init__(
        self, model: torch.nn.Module, weight_files: Iterable[Path] = (), *, spill: bool | Path = False
    ) -> None:
        self.digest = state_digest(model)
        self.digests = {name: tensor_digest(name, t) for name, t, _ in model_tensors(model)}
        self._opened: list[BinaryIO] = []
        weakref.finalize(self, _close, self._opened)
        index = safetensors_index(weight_files, self._opened)
        self.sources: dict[str, StoredTensor | torch.Tensor] = {}
        unbacked = []
        for name, tensor, is_parameter in model_tensors(model):
            if not is_parameter:
                continue  # buffers are checked, not restored: a recipe has no business changing them
            if name in index and reproduces(index[name], tensor):
                self.sources[name] = index[name]
            else:
                unbacked.append((name, tensor))
        if spill and unbacked:
            folder = Path(tempfile.gettempdir()) if spill is True else Path(spill)
            self.sources.update(self._spill(unbacked, folder))
        else:
            self.sources.update({name: t.detach().to("cpu", copy=True) for name, t in unbacked})

    def _spill(self, tensors: list[tuple[str, torch.Tensor]], folder: Path) -> dict[str, StoredTensor]:
        """Write ``tensors`` to one file in ``folder`` and index it. The file is unlinked once it is written and
        read through the handle kept open: it goes when the snapshot does, even if the process is killed."""
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="compsafe-base-", suffix=".bin", dir=folder)
        path = Path(name)
        handle = os.fdopen(fd, "w+b", buffering=0)
        self._opened.append(handle)
        stored: dict[str, StoredTensor] = {}
        offset = 0
        try:
            for tensor_name, tensor in tensors:
                flat = tensor.detach().cpu().contiguous().reshape(-1)
                if flat.numel():
                    handle.write(memoryview(flat.view(torch.uint8).numpy()))
                stored[tensor_name] = StoredTensor(path, offset, tensor.dtype, tuple(tensor.shape), handle)
                offset += flat.numel() * flat.element_size()
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        return stored

    @property
    def held_in_memory(self) -> list[str]:
        """Parameters this snapshot holds a copy of (none when every one can be re-read from a file)."""
        return [name for name, source in self.sources.items() if isinstance(source, torch.Tensor)]

    def changed(self, model: torch.nn.Module) -> list[str]:
        """Names of the tensors whose bytes (or dtype, shape) differ from the base's."""
        current = {name: tensor_digest(name, t) for name, t, _ in model_tensors(model)}
        if current.keys() != self.digests.keys():
            raise RuntimeError("base weights were not restored exactly after a variant (tensors added or removed)")
        return [name for name, digest in current.items() if digest != self.digests[name]]

    @torch.no_grad()
    def restore(self, model: torch.nn.Module) -> list[str]:
        """Rewrite the tensors a variant changed from their sources, one at a time; returns their names.

        A digest mismatch afterwards (a changed buffer, a weight file changed on disk) is a bug, never a user
        error: ``RuntimeError``.
        """
        changed = self.changed(model)
        tensors = {name: t for name, t, _ in model_tensors(model)}
        for name in changed:
            source = self.sources.get(name)
            if source is None:
                continue  # a buffer: caught by the check below
            value = source.read() if isinstance(source, StoredTensor) else source
            tensors[name].data.copy_(value.to(device=tensors[name].device, dtype=tensors[name].dtype))
            del value
        if any(tensor_digest(name, tensors[name]) != self.digests[name] for name in changed):
            raise RuntimeError("base weights were not restored exactly after a variant")
        return changed


def _close(files: list[BinaryIO]) -> None:
    for handle in files:
        with contextlib.suppress(OSError):
            handle.close()
