"""Pre-compressed checkpoints: recognise the format of a model folder before loading it.

A variant can be a model someone else compressed and deployed: a GGUF file (any quantization type
transformers can dequantize: F32/F16/BF16, Q4_0..Q8_0, the k-quants; dequantized on load, measured as the
values the GGUF encodes) or a folder whose ``config.json`` carries a ``quantization_config``. Whether the
latter loads depends on the format's package and device, so the format is read from ``quant_method`` first,
and a checkpoint that cannot load here fails with one line naming the format, what it needs, and what to do
-- instead of an ImportError or a CUDA assertion deep inside transformers.

What loads on a CPU machine (see shared/BACKENDS.md): compressed-tensors (llm-compressor output) with the
``compressed-tensors`` package; bitsandbytes 8-bit/nf4/fp4 with ``bitsandbytes`` and ``device_map="cpu"``;
torchao int8/intx; GPTQ through ``gptqmodel`` + ``optimum``, or -- where they are not installed -- dequantized
by compsafe itself (2/4/8-bit layouts, ``models.gptq_packing``); HQQ and quanto with their packages. AWQ's
packed kernels, EETQ, FBGEMM-FP8, AQLM, VPTQ, SpQR, HIGGS, MXFP4/NVFP4 and Marlin kernels need a CUDA GPU.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compsafe.errors import ModelLoadError


@dataclass(frozen=True)
class QuantFormat:
    """What loading one ``quant_method`` needs."""

    quant_method: str
    label: str  # how a user knows the format: "GPTQ-packed"
    packages: tuple[str, ...] = ()  # import names, all needed
    install: str = ""  # pip names for the hint
    cpu: bool = True  # runs without a CUDA GPU once the packages are present
    cpu_kwargs: tuple[tuple[str, Any], ...] = ()  # extra from_pretrained kwargs on CPU


FORMATS: dict[str, QuantFormat] = {
    f.quant_method: f
    for f in (
        QuantFormat(
            "gptq", "GPTQ-packed", ("gptqmodel", "optimum"), "gptqmodel optimum", cpu_kwargs=(("device_map", "cpu"),)
        ),
        QuantFormat("awq", "AWQ-packed", ("gptqmodel", "accelerate"), "gptqmodel", cpu=False),
        QuantFormat(
            "bitsandbytes",
            "bitsandbytes-quantized",
            ("bitsandbytes", "accelerate"),
            "bitsandbytes accelerate",
            cpu_kwargs=(("device_map", "cpu"),),
        ),
        QuantFormat(
            "compressed-tensors", "compressed-tensors (llm-compressor)", ("compressed_tensors",), "compressed-tensors"
        ),
        QuantFormat("torchao", "torchao-quantized", ("torchao",), "torchao"),
        QuantFormat("hqq", "HQQ-quantized", ("hqq",), "hqq"),
        QuantFormat("quanto", "quanto-quantized", ("optimum.quanto",), "optimum-quanto"),
        QuantFormat("eetq", "EETQ int8", ("eetq",), "eetq", cpu=False),
        QuantFormat("fbgemm_fp8", "FBGEMM FP8", ("fbgemm_gpu",), "fbgemm-gpu", cpu=False),
        QuantFormat("aqlm", "AQLM", ("aqlm",), "aqlm", cpu=False),
        QuantFormat("vptq", "VPTQ", ("vptq",), "vptq", cpu=False),
        QuantFormat("spqr", "SpQR", ("spqr_quant",), "spqr_quant", cpu=False),
        QuantFormat("higgs", "HIGGS", ("flute",), "flute-kernel", cpu=False),
        QuantFormat("mxfp4", "MXFP4", ("kernels",), "kernels", cpu=False),
        QuantFormat("nvfp4", "NVFP4", (), "", cpu=False),
    )
}


def read_quantization_config(folder: Path) -> dict[str, Any] | None:
    """The ``quantization_config`` of ``folder/config.json`` (None when absent or unreadable: transformers will
    report an unreadable config itself)."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    quantization = config.get("quantization_config") if isinstance(config, dict) else None
    return quantization if isinstance(quantization, dict) else None


def describe(quantization: dict[str, Any]) -> str:
    """A short human name for a quantization config: ``GPTQ-packed (quant_method=gptq, 4-bit, group 128)``."""
    method = str(quantization.get("quant_method", "unknown")).lower()
    fmt = FORMATS.get(method)
    details = [f"quant_method={method}"]
    if quantization.get("bits"):
        details.append(f"{quantization['bits']}-bit")
    if quantization.get("load_in_8bit"):
        details.append("8-bit")
    if quantization.get("load_in_4bit"):
        details.append(str(quantization.get("bnb_4bit_quant_type", "4bit")))
    if quantization.get("group_size"):
        details.append(f"group {quantization['group_size']}")
    return f"{fmt.label if fmt else method} ({', '.join(details)})"


def _missing(packages: tuple[str, ...]) -> list[str]:
    missing = []
    for name in packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing
            found = False
        if not found:
            missing.append(name)
    return missing


def quantized_load_kwargs(folder: Path, device: torch.device) -> dict[str, Any]:
    """Extra ``from_pretrained`` kwargs for a pre-quantized folder (empty for a plain one), or a one-line
    ``ModelLoadError`` when its format cannot load on this machine."""
    quantization = read_quantization_config(folder)
    if quantization is None:
        return {}
    method = str(quantization.get("quant_method", "")).lower()
    what = f"{folder} is {describe(quantization)}"
    fallback = "run compsafe on a machine that can load it, or export a dequantized safetensors copy there"
    if method == "gguf":
        return {}
    fmt = FORMATS.get(method)
    if fmt is None:  # a format compsafe does not know: let transformers try; failures are mapped by the caller
        return {}
    if device.type != "cuda" and not fmt.cpu:
        needs = f"{fmt.install} and a CUDA GPU" if fmt.install else "a CUDA GPU"
        raise ModelLoadError(f"{what}; loading it needs {needs} (no CUDA GPU here): {fallback}")
    missing = _missing(fmt.packages)
    if missing:
        gpu = " or a CUDA GPU" if method in ("gptq", "awq") else ""
        raise ModelLoadError(
            f"{what}; loading it needs {', '.join(missing)} (`pip install {fmt.install}`){gpu}, not installed here: "
            f"install it, or {fallback}"
        )
    return dict(fmt.cpu_kwargs) if device.type != "cuda" else {}


def decodes_gptq_here(folder: Path) -> bool:
    """A GPTQ folder that compsafe decodes itself (``models.gptq_packing``): its ``quant_method`` is ``gptq`` and
    gptqmodel/optimum, which transformers needs to load it, are not installed."""
    quantization = read_quantization_config(folder)
    if quantization is None or str(quantization.get("quant_method", "")).lower() != "gptq":
        return False
    return bool(_missing(FORMATS["gptq"].packages))


def explain_failure(folder: Path, exc: BaseException) -> ModelLoadError | None:
    """A one-line error for a pre-quantized folder that transformers failed to load (None for plain folders)."""
    quantization = read_quantization_config(folder)
    if quantization is None or str(quantization.get("quant_method", "")).lower() == "gguf":
        return None
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ModelLoadError(
        f"{folder} is {describe(quantization)} and transformers could not load it on this machine ({reason}): "
        "install the format's package, use a CUDA GPU, or export a dequantized safetensors copy"
    )


def is_quantized_model(model: Any) -> bool:
    """True for a model transformers loaded with a quantizer (its weights are not plain floats to cast)."""
    return bool(getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None)
