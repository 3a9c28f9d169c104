"""Digests that identify models: of weight files (streamed, never read whole into memory) and of in-memory
weights (for variants that exist only in memory). Reports name every model by one of these."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

CHUNK = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_digest(location: Path) -> str:
    """sha256 over (name, sha256) of every weight file in a folder (or of one file)."""
    files = (
        [location]
        if location.is_file()
        else sorted(p for p in location.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


@torch.no_grad()
def state_digest(model: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every parameter and buffer (tied weights once)."""
    digest = hashlib.sha256()
    seen: set[int] = set()
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        flat = tensor.detach().contiguous().cpu().reshape(-1)
        if flat.numel():  # the array itself, not .tobytes(): no transient copy of the largest tensor
            digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def model_identity(handle: Any) -> dict[str, Any]:
    """What names a loaded base model in the store: the digest of its weight files (its path when it has none on
    disk, e.g. a catalog model merged in memory), its dtype and its device type."""
    path = Path(handle.resolved_path)
    return {
        "weights": weights_digest(path) if path.exists() else handle.resolved_path,
        "dtype": str(handle.dtype),
        "device": handle.device.type,
    }
