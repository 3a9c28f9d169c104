"""compress.snapshot: the base comes back bit for bit after a variant, re-read from its weight file (or a spill
file), only where the recipe changed it, with no copy of the model held in memory."""

from __future__ import annotations

import gc
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from compsafe.compress import WeightSnapshot, applied, apply_recipe, parse_recipe
from compsafe.integrity import state_digest
from compsafe.models import LoadOptions, load_model
from conftest import save_tiny_llama, tiny_llama

CPU32 = LoadOptions(device="cpu", dtype="float32")


def clones(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def assert_bit_identical(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype
        assert torch.equal(after[name].view(torch.uint8), tensor.view(torch.uint8)), name


@pytest.fixture
def loaded(tmp_path, tiny_tokenizer):
    folder = save_tiny_llama(tmp_path / "model", tiny_tokenizer)
    return folder, load_model(str(folder), CPU32).model


def test_restore_rereads_only_the_changed_tensors_from_the_weight_file(loaded) -> None:
    folder, model = loaded
    snapshot = WeightSnapshot(model, weight_files=sorted(folder.glob("*.safetensors")))
    assert snapshot.held_in_memory == []  # every parameter can be re-read: no copy of the model is kept
    before = clones(model)
    apply_recipe(model, parse_recipe("mag-50"))
    changed = snapshot.changed(model)
    assert changed and set(changed) == {n for n, t in model.state_dict().items() if not torch.equal(t, before[n])}
    assert snapshot.restore(model) == changed
    assert_bit_identical(model, before)
    assert snapshot.changed(model) == []


def test_only_the_recipe_modules_are_rewritten(loaded) -> None:
    folder, model = loaded
    snapshot = WeightSnapshot(model, weight_files=sorted(folder.glob("*.safetensors")))
    before = clones(model)
    with applied(model, "int8", snapshot=snapshot, only=["layers.1"]):
        changed = snapshot.changed(model)
    assert changed and all(".layers.1." in name for name in changed)
    assert_bit_identical(model, before)


def test_a_bf16_file_reproduces_a_float32_model(tmp_path, tiny_tokenizer) -> None:
    # the default model is a bf16 folder evaluated in float32: the file, cast as the loader cast it, is exact
    folder = save_tiny_llama(tmp_path / "model", tiny_tokenizer)
    path = next(folder.glob("*.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(path).items()}, path, metadata={"format": "pt"})
    model = load_model(str(folder), CPU32).model
    assert model.dtype == torch.float32
    snapshot = WeightSnapshot(model, weight_files=[path])
    assert snapshot.held_in_memory == []
    before = clones(model)
    with applied(model, "int4-rtn-g32", snapshot=snapshot):
        assert snapshot.changed(model)
    assert_bit_identical(model, before)


def test_tensors_the_file_does_not_reproduce_are_spilled_to_disk(loaded, tmp_path) -> None:
    folder, model = loaded
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(2)  # the in-memory base no longer equals its file here
    spill = tmp_path / "spill"
    snapshot = WeightSnapshot(model, weight_files=sorted(folder.glob("*.safetensors")), spill=spill)
    assert snapshot.held_in_memory == []
    assert snapshot.sources["model.layers.0.mlp.up_proj.weight"].path.parent == spill
    assert list(spill.iterdir()) == []  # unlinked once written, read through the open handle: nothing to leak
    assert snapshot.sources["model.layers.1.mlp.up_proj.weight"].path.parent == folder
    before = clones(model)
    with applied(model, "int8", snapshot=snapshot):
        pass
    assert_bit_identical(model, before)


def test_without_files_or_spill_folder_it_keeps_copies() -> None:
    model = tiny_llama()
    snapshot = WeightSnapshot(model)
    assert set(snapshot.held_in_memory) == {name for name, _ in model.named_parameters()}
    before = clones(model)
    with applied(model, "2:4", snapshot=snapshot):
        pass
    assert_bit_identical(model, before)
    assert state_digest(model) == snapshot.digest


def test_a_weight_folder_replaced_during_the_run_still_restores_exactly(loaded) -> None:
    # another process re-materializing a catalog model writes a new file and renames it over the old one: the
    # snapshot reads the file it opened, so the base it restores is the one it was taken from
    folder, model = loaded
    path = next(folder.glob("*.safetensors"))
    snapshot = WeightSnapshot(model, weight_files=[path])
    before = clones(model)
    replacement = folder / "new.tmp"
    save_file({k: v + 1 for k, v in load_file(path).items()}, replacement, metadata={"format": "pt"})
    os.replace(replacement, path)
    with applied(model, "int8", snapshot=snapshot):
        pass
    assert_bit_identical(model, before)
    del snapshot
    gc.collect()


def test_a_weight_file_overwritten_in_place_fails_loudly(loaded) -> None:
    folder, model = loaded
    path = next(folder.glob("*.safetensors"))
    snapshot = WeightSnapshot(model, weight_files=[path])
    stored = snapshot.sources["model.layers.0.self_attn.q_proj.weight"]
    with path.open("r+b") as handle:  # the same file, other bytes where a tensor int8 changes lies
        handle.seek(stored.offset)
        handle.write(b"\x7f" * 64)
    with pytest.raises(RuntimeError, match="not restored exactly"), applied(model, "int8", snapshot=snapshot):
        pass


def test_the_sliced_check_finds_a_difference_in_any_slice(tmp_path, monkeypatch) -> None:
    from compsafe.compress import snapshot as snapshot_module
    from compsafe.compress.snapshot import reproduces, safetensors_index

    monkeypatch.setattr(snapshot_module, "CHECK_SLICE", 7)  # 40 values: slices of 7, the last one partial
    tensor = torch.randn(5, 8)
    save_file({"w": tensor}, tmp_path / "w.safetensors")
    opened: list = []
    stored = safetensors_index([tmp_path / "w.safetensors"], opened)["w"]
    assert reproduces(stored, tensor) and torch.equal(stored.read(), tensor)
    for flat_index in (0, 20, 39):  # first, a middle and the last (partial) slice
        other = tensor.clone()
        other.view(-1)[flat_index] += 1
        assert not reproduces(stored, other), flat_index
    assert reproduces(stored, tensor.to(torch.float64))  # the loader's cast, slice by slice
    for handle in opened:
        handle.close()


def test_nonfinite_parameters_checks_every_slice() -> None:
    from compsafe.compress import nonfinite_parameters

    layer = torch.nn.Linear(1024, 1100)  # 1,126,400 values: more than one 1M slice
    assert nonfinite_parameters(layer) == []
    with torch.no_grad():
        layer.weight.view(-1)[-1] = float("nan")  # in the second slice only
    assert nonfinite_parameters(layer) == ["weight"]


def test_freed_memory_goes_back_on_glibc() -> None:
    import platform

    from compsafe.memory import return_freed_memory

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert return_freed_memory() is expected


def test_low_memory_mode_is_opt_in(monkeypatch) -> None:
    import compsafe.memory as memory

    calls: list[int] = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv("COMPSAFE_LOW_MEMORY", raising=False)
    assert memory.apply_memory_setting() is False and calls == []  # the default keeps glibc's fast path
    monkeypatch.setenv("COMPSAFE_LOW_MEMORY", "1")
    assert memory.apply_memory_setting() is True and calls == [1]
