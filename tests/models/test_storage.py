"""Bits/weight and bytes read from a model's files (models.storage): dense, packed and GGUF folders, within 10%
of the bytes on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from compsafe.export import export_variant
from compsafe.models import LoadOptions
from compsafe.models.storage import folder_storage, stored_size
from gguf_writer import write_llama_gguf


def disk(folder: Path, suffix: str = ".safetensors") -> int:
    return sum(f.stat().st_size for f in folder.glob(f"*{suffix}"))


def test_dense_folder_is_its_dtype_and_sized_as_on_disk(tiny_llama_dir: Path) -> None:
    storage = folder_storage(tiny_llama_dir)
    assert storage["effective_bits_per_weight"] == 32.0  # the tiny model is saved in float32
    assert abs(storage["packed_size_bytes"] - disk(tiny_llama_dir)) <= 0.1 * disk(tiny_llama_dir)


@pytest.mark.parametrize(("recipe", "bits"), [("int4-g32", 4 + 16 / 32), ("int8", 8.0), ("int3-g32-asym", 8.0)])
def test_packed_folder_bits_include_scales(tiny_llama_dir: Path, tmp_path: Path, recipe: str, bits: float) -> None:
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / "v", LoadOptions(device="cpu", dtype="bfloat16"))
    storage = folder_storage(out)
    assert bits <= storage["effective_bits_per_weight"] <= bits + 1.2  # + scales (+ zero points), bf16
    assert abs(storage["packed_size_bytes"] - disk(out)) <= 0.1 * disk(out)


def test_gguf_bits_from_its_tensor_table(tiny_llama_dir: Path, tmp_path: Path) -> None:
    path = write_llama_gguf(tiny_llama_dir, tmp_path / "m.gguf", "Q8_0")
    storage = folder_storage(path)
    assert storage["effective_bits_per_weight"] == pytest.approx(8.5)  # Q8_0: 32 int8 + one fp16 scale
    assert storage["accounted_from"] == "gguf" and storage["packed_size_bytes"] <= path.stat().st_size


def test_unreadable_files_give_no_accounting(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    assert stored_size(tmp_path) is None
