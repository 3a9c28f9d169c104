"""Load any transformers causal LM from a folder, a GGUF file, a hub id or a catalog name.

Safety defaults: weights are read from safetensors only (pickle files can run code when loaded) unless the
user passes ``allow_pickle``; ``trust_remote_code`` is off unless asked for. Failures the user can fix are
raised as ``ModelLoadError`` with a one-line fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compsafe import paths
from compsafe.errors import ModelLoadError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class LoadOptions:
    """How to load: device/dtype (see ``auto_dtype``) and the safety switches."""

    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    trust_remote_code: bool = False


@dataclass
class ModelHandle:
    """A loaded model with what probes need to query it consistently."""

    model: Any
    tokenizer: Any
    source: str  # what the user named: a path, hub id or catalog name
    resolved_path: str  # folder (or file) actually loaded
    device: torch.device
    dtype: torch.dtype
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def weight_files(self) -> list[Path]:
        """The safetensors files the weights were loaded from, which a restore can re-read (none for a GGUF file
        or a hub id)."""
        folder = Path(self.resolved_path)
        if self.meta.get("gguf_file") or not folder.is_dir():
            return []
        return sorted(folder.glob("*.safetensors"))

    @property
    def max_length(self) -> int:
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda asked for but no CUDA GPU is visible: use --device cpu or auto")
    return resolved


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matmuls (AVX512-BF16/AMX), where bf16 runs ~2x faster than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def auto_dtype(checkpoint_dtype: torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 on a GPU; on a CPU the checkpoint's own bf16 where the CPU computes bf16 natively, else fp32.

    A bf16 checkpoint evaluated in bf16 is what a GPU deployment runs; fp16 and slow-bf16 CPUs get fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16
    if checkpoint_dtype == torch.bfloat16 and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: str, device: torch.device, checkpoint_dtype: torch.dtype | None = None) -> torch.dtype:
    if dtype == "auto":
        return auto_dtype(checkpoint_dtype, device)
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return table[dtype]


def check_weight_files(folder: Path, allow_pickle: bool) -> None:
    """Refuse folders whose weights exist only as pickle files unless the user allowed pickle."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(n.endswith(".safetensors") for n in names) or any(n.endswith(".gguf") for n in names):
        return
    pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"{folder} holds weights only as pickle ({pickles[0]}), which can execute code when loaded: "
            "convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    if not pickles:
        raise ModelLoadError(f"{folder} has no model weights (*.safetensors, *.gguf): point --model at a model folder")


def check_config_file(folder: Path) -> None:
    """``config.json`` must be a readable JSON object (non-UTF-8, a 5,000-digit number or a list would
    otherwise fail inside transformers with a traceback)."""
    from compsafe.errors import DataFileError
    from compsafe.jsonio import read_json_file

    path = folder / "config.json"
    if not path.is_file():
        return  # a GGUF folder, or transformers names what is missing
    try:
        config = read_json_file(path, "model config")
    except DataFileError as exc:
        raise ModelLoadError(f"{exc}: fix or re-download the model's config.json") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object: fix or re-download the model's config.json")


def check_loading_info(location: str, info: dict[str, Any]) -> None:
    """A folder whose files lack weights the config needs would load with random values: refuse it."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise ModelLoadError(
            f"{location}: the weight shapes do not match its config.json (e.g. {mismatched[0][0]}): use the config "
            "the weights were saved with (or re-export the model)"
        )
    if missing:
        raise ModelLoadError(
            f"{location}: {len(missing)} weight tensor(s) its config.json needs are not in the files (e.g. "
            f"{missing[0]}), so they would be random: pass a complete model folder"
        )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub endpoint (``HF_ENDPOINT``) accepts a TCP connection within ``timeout`` seconds.

    transformers would otherwise retry an unreachable hub for ~45 s, printing a warning per retry."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if not endpoint.hostname:
        return False
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached(hub_id: str) -> bool:
    """Whether a hub model's config is in the local Hugging Face cache (loadable with no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unusual cache layout means "not cached", never a crash
        return False


def _hub_offline_message(hub_id: str) -> str:
    return (
        f"cannot fetch {hub_id!r} from the Hugging Face hub (offline or not cached): on a connected machine run "
        f"`hf download {hub_id} --local-dir DIR`, copy DIR here and pass --model DIR"
    )


def load_model(spec: str | None, options: LoadOptions | None = None) -> ModelHandle:
    """Load ``spec``: a catalog name (None = the default), a folder, a .gguf file or a hub id."""
    from compsafe.models.catalog import DEFAULT_MODEL, NAMED_MODELS

    options = options or LoadOptions()
    spec = spec or DEFAULT_MODEL
    if spec in NAMED_MODELS:
        folder = NAMED_MODELS[spec].materialize()
        handle = load_pretrained(str(folder), options, gguf_file=None)
        handle.source = spec
        handle.meta.update(NAMED_MODELS[spec].describe())
        return handle
    if paths.exists(spec):
        return load_local(spec, options)
    check_model_spec(spec)
    return load_pretrained(spec, options, gguf_file=None, source=spec)


def check_model_spec(spec: str | None) -> None:
    """Fail before anything runs (or prints) when ``spec`` cannot name a model here: not a catalog name, not a
    path, not a hub id, or a hub id that is not cached while the hub cannot be reached (one line, in seconds)."""
    from compsafe.models.catalog import NAMED_MODELS

    if spec is None or spec in NAMED_MODELS or paths.exists(spec):
        return
    if not HUB_ID.match(spec) or spec.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"no model folder at {spec!r}: pass an existing folder with config.json and *.safetensors, a .gguf "
            f"file, a hub id like org/name, or one of: {', '.join(sorted(NAMED_MODELS))}"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if (offline or not hub_reachable()) and not hub_cached(spec):
        raise ModelLoadError(_hub_offline_message(spec))


def load_local(spec: str, options: LoadOptions) -> ModelHandle:
    """An existing path: a .gguf file, or a folder (weights checked before transformers reads them)."""
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        handle = load_pretrained(str(path.parent), options, gguf_file=path.name, source=spec)
        handle.meta["gguf_file"] = path.name  # the folder may hold other files: digest this one
        return handle
    if not path.is_dir():
        raise ModelLoadError(f"{spec} is a file but not a .gguf: pass a model folder, a .gguf file or a hub id")
    check_weight_files(path, options.allow_pickle)
    check_config_file(path)
    from compsafe.models.safetensors_check import check_safetensors_folder

    check_safetensors_folder(path)  # truncated files and bad headers fail here, naming the file
    from compsafe.models.sparse_bitmask import sparsity_layout

    if sparsity_layout(path):
        return load_sparse_folder(path, options, spec)
    from compsafe.models import formats

    if formats.decodes_gptq_here(path):
        return load_gptq_folder(path, options, spec)
    ggufs = sorted(path.glob("*.gguf"))
    if ggufs and not any(path.glob("*.safetensors")):
        return load_pretrained(str(path), options, gguf_file=ggufs[0].name, source=spec)
    return load_pretrained(str(path), options, gguf_file=None, source=spec)


def load_pretrained(
    location: str, options: LoadOptions, gguf_file: str | None, source: str | None = None
) -> ModelHandle:
    """Call transformers' ``from_pretrained`` with compsafe's safety defaults and map failures to one line."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device) if options.dtype != "auto" else None
    is_local = paths.exists(location)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    common: dict[str, Any] = {"trust_remote_code": options.trust_remote_code}
    if gguf_file:
        common["gguf_file"] = gguf_file
    if not is_local and (offline or not hub_reachable()):
        if not hub_cached(location):  # fail in one line now, not after a minute of HTTP retries
            raise ModelLoadError(_hub_offline_message(location))
        common["local_files_only"] = True
    from compsafe.models import formats

    # a pre-quantized folder (GPTQ, AWQ, bitsandbytes, ...): fail in one line where it cannot load here
    quantized_kwargs = formats.quantized_load_kwargs(Path(location), device) if is_local and not gguf_file else {}
    prequantized = is_local and not gguf_file and formats.read_quantization_config(Path(location)) is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        model_kwargs: dict[str, Any] = {**common, "dtype": dtype or "auto"}
        if not gguf_file:
            model_kwargs["use_safetensors"] = None if options.allow_pickle else True
        check_loading = is_local and not gguf_file and not prequantized
        model = AutoModelForCausalLM.from_pretrained(
            location, **model_kwargs, **quantized_kwargs, output_loading_info=check_loading
        )
        if check_loading:
            model, loading_info = model
            check_loading_info(location, loading_info)
    except (OSError, EnvironmentError) as exc:  # noqa: UP024 - transformers raises both spellings
        if not is_local:
            raise ModelLoadError(_hub_offline_message(location)) from exc
        raise ModelLoadError(f"cannot load model from {location}: {str(exc).splitlines()[0]}") from exc
    except (ImportError, RuntimeError, AssertionError) as exc:
        explained = formats.explain_failure(Path(location), exc) if prequantized else None
        if explained is None and is_local and "mismatch" in str(exc).lower():
            raise ModelLoadError(
                f"{location}: the weight shapes do not match its config.json: use the config the weights were "
                "saved with (or re-export the model)"
            ) from exc
        if explained is None:
            raise
        raise explained from exc
    except ValueError as exc:
        explained = formats.explain_failure(Path(location), exc) if prequantized else None
        if explained is not None:
            raise explained from exc
        message = str(exc).splitlines()[0]
        if "trust_remote_code" in message:
            raise ModelLoadError(
                f"{location} needs custom code from its repository: review it, then pass --trust-remote-code"
            ) from exc
        raise ModelLoadError(f"cannot load model from {location}: {message}") from exc
    if prequantized and formats.is_quantized_model(model):  # packed weights: evaluated as they load
        dtype = model.dtype
    else:
        if dtype is None:
            dtype = auto_dtype(model.dtype, device)
        model.to(device=device, dtype=dtype)
    return ready_handle(model, tokenizer, source or location, location, device, dtype)


def ready_handle(
    model: Any, tokenizer: Any, source: str, location: str, device: torch.device, dtype: torch.dtype
) -> ModelHandle:
    """The handle of a loaded model, in eval mode, with a pad token (the end-of-sequence one if it had none)."""
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        source=source,
        resolved_path=location,
        device=device,
        dtype=dtype,
        meta={
            "architecture": (model.config.architectures or [type(model).__name__])[0],
            "num_parameters": sum(p.numel() for p in model.parameters()),
        },
    )


def load_sparse_folder(path: Path, options: LoadOptions, source: str) -> ModelHandle:
    """A compressed-tensors ``sparse-bitmask`` / ``sparse-24-bitmask`` folder, decoded here bit for bit
    (``models.sparse_bitmask``): transformers with compressed-tensors >= 0.15 ignores its ``sparsity_config``."""
    from compsafe.models.sparse_bitmask import dense_state

    return load_decoded_folder(path, options, source, dense_state, "sparse")


def load_gptq_folder(path: Path, options: LoadOptions, source: str) -> ModelHandle:
    """A GPTQ folder where gptqmodel/optimum are not installed: its layers dequantized here
    (``models.gptq_packing``, the layout gptqmodel writes), evaluated as the weights the files encode."""
    from compsafe.models.gptq_packing import dense_state

    return load_decoded_folder(path, options, source, dense_state, "GPTQ")


def load_decoded_folder(path: Path, options: LoadOptions, source: str, decode: Any, kind: str) -> ModelHandle:
    """Build the model of ``path``'s config.json and fill it from ``decode(path)``: ``(state, decoded)``, the
    state dict with every packed layer decoded to its ``[out, in]`` weight, and those layers' names."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.initialization import no_init_weights
    from transformers.pytorch_utils import Conv1D

    device = resolve_device(options.device)
    common = {"trust_remote_code": options.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(path, **common)
        config.__dict__.pop("quantization_config", None)  # the weights are decoded to plain floats below
        state, decoded = decode(path)
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load {kind} model from {path}: {str(exc).splitlines()[0]}") from exc
    stored = next((t.dtype for name, t in state.items()
                   if t.is_floating_point() and name.rpartition(".")[0] not in decoded), None)
    dtype = resolve_dtype(options.dtype, device, stored)
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **common)
    for module in decoded:  # decoded weights are [out, in]: a Conv1D (GPT-2) holds [in, out]
        if isinstance(_submodule(model, module), Conv1D):
            state[f"{module}.weight"] = state[f"{module}.weight"].t().contiguous()
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()
    parameters = dict(model.named_parameters(remove_duplicate=False))
    loaded = {parameters[name].data_ptr() for name in state if name in parameters}
    missing = [name for name in missing if name not in parameters or parameters[name].data_ptr() not in loaded]
    check_loading_info(str(path), {"missing_keys": missing})
    if unexpected:
        raise ModelLoadError(
            f"{path}: tensor {unexpected[0]} is not a weight of its config.json's model: re-export the model"
        )
    model.to(device=device, dtype=dtype)  # buffers too, as load_pretrained casts them
    return ready_handle(model, tokenizer, source, str(path), device, dtype)


def _submodule(model: Any, name: str) -> Any:
    """``model``'s module ``name``, or None when the folder names one its config's model lacks (reported as an
    unexpected tensor by the caller)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None
