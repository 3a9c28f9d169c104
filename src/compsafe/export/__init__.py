"""Export a compressed variant as a loadable safetensors model folder with a provenance manifest.

Formats (``--format``):

* ``compressed-tensors`` (packed): quantized layers as int codes with compsafe's own group scales
  (``export.packed``), the format llm-compressor writes and vLLM and plain transformers load; the folder is
  about as small as the bits/weight say. Every quantization recipe (RTN, GPTQ, AWQ, +keep8) can be packed.
* ``sparse-bitmask`` / ``sparse-24-bitmask``: pruned layers in compressed-tensors' sparse layouts
  (``export.sparse``; a pruned ``+keep8`` variant's int8 layers packed as above, in the same folder);
  compsafe's loader decodes them bit for bit (plain transformers with compressed-tensors 0.20 cannot:
  ``models.sparse_bitmask``).
* ``gptq``: quantized layers in the GPTQ checkpoint layout (``qweight``/``qzeros``/``scales``/``g_idx``,
  ``export.gptq``) that gptqmodel and optimum load; compsafe's loader decodes it where they are not installed.
* ``dense``: every weight dequantized at the model's dtype. Every loader reads it without extra packages and
  it reproduces the in-memory variant bit for bit, but it is as large as the original.

``auto`` (the default) packs quantized variants, writes pruned ones in their sparse layout and everything else
(low-rank) dense. The manifest,
``compsafe_manifest.json``, says where it came from: recipe and method config, the compression report
summary (effective bits, sparsity, kept layers), the calibration set's spec and digest, the source model and
the digest of its weight files, the digest of the exported weight files, and the compsafe version -- so a
folder found later can be traced to the exact base and recipe, and checked with ``weights_digest``.

The folder is written to a staging directory next to ``out`` and renamed into place, so a killed export
never leaves a half-written model that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from compsafe import __version__
from compsafe.errors import ConfigError, ManifestError
from compsafe.models.sparse_bitmask import PLAIN_TRANSFORMERS_NOTE
from compsafe.runfolder import atomic_folder

MANIFEST_NAME = "compsafe_manifest.json"
MANIFEST_FORMAT = "compsafe-variant/1"
DENSE = "dense"
COMPRESSED_TENSORS = "compressed-tensors"
SPARSE_BITMASK = "sparse-bitmask"
SPARSE_24_BITMASK = "sparse-24-bitmask"
SPARSE = (SPARSE_BITMASK, SPARSE_24_BITMASK)
GGUF = "gguf"
GPTQ = "gptq"
FORMATS = ("auto", COMPRESSED_TENSORS, SPARSE_BITMASK, SPARSE_24_BITMASK, GGUF, GPTQ, DENSE)


def check_format(export_format: str) -> str:
    """The format name, or a one-line ``ConfigError`` naming the choices."""
    if export_format not in FORMATS:
        raise ConfigError(f"unknown export format {export_format!r}: use one of {', '.join(FORMATS)}")
    return export_format


def auto_format(report: Any, out: Path | None = None) -> str:
    """What ``auto`` writes for a compression report: a GGUF for a llama.cpp block recipe (q4_0, q8_0) written
    to a ``.gguf`` path, the sparse layout of its pruned layers (2:4 only when every pruned layer is 2:4; a
    ``+keep8`` variant's int8 layers packed beside them), packed when it has quantized layers, else dense."""
    if report.extra.get("ggml_type") and out is not None and out.suffix == ".gguf":
        return GGUF
    layouts = set(report.sparse_layouts.values())
    if layouts:  # a pruned +keep8 variant too: its int8 layers are packed beside the sparse ones
        return SPARSE_24_BITMASK if layouts == {SPARSE_24_BITMASK} else SPARSE_BITMASK
    if report.grids:
        return COMPRESSED_TENSORS
    return DENSE


def resolve_format(export_format: str, report: Any, out: Path | None = None) -> str:
    """``auto`` -> ``auto_format``; a format the variant has nothing for is a one-line ``ConfigError``."""
    if export_format == "auto":
        return auto_format(report, out)
    if export_format == GGUF and not report.extra.get("ggml_type"):
        raise ConfigError(
            f"--format gguf writes llama.cpp's own block formats only: use recipe q4_0 or q8_0 ({report.recipe}'s "
            "grid is not one, and re-quantizing it would ship weights that were not measured)"
        )
    if export_format in (COMPRESSED_TENSORS, GPTQ) and not report.grids:
        raise ConfigError(
            "this recipe has no quantized layer to pack: export it with --format auto (sparse layouts for pruned "
            "variants) or --format dense"
        )
    if export_format == GPTQ and report.sparse_layouts:
        raise ConfigError("the GPTQ format has no sparse layout for this variant's pruned layers: export it with "
                          "--format auto (sparse layout, its int8 layers packed) or --format dense")
    if export_format in SPARSE and not report.sparse_layouts:
        raise ConfigError(f"this recipe prunes no layer, so there is nothing to store as {export_format}: "
                          "use --format auto or dense")
    return export_format


def _summary_of(report_dict: dict[str, Any]) -> dict[str, Any]:
    """The compression report without its per-layer list (kept layers are named: they are the point of +keep)."""
    summary = {k: v for k, v in report_dict.items() if k not in ("layers", "kept_layers")}
    summary["n_compressed_layers"] = len(report_dict.get("layers", []))
    if report_dict.get("kept_layers"):
        summary["kept_layers"] = [
            {"name": k["name"], "bits_per_weight": k["bits_per_weight"]} for k in report_dict["kept_layers"]
        ]
    return summary


def manifest_path(out: Path) -> Path:
    """Where the manifest of an export lives: inside a folder, or beside a ``.gguf`` file (``NAME.gguf.`` +
    ``compsafe_manifest.json``)."""
    return out.with_name(f"{out.name}.{MANIFEST_NAME}") if out.suffix == ".gguf" else out / MANIFEST_NAME


def _prepare_out(out: Path, overwrite: bool, export_format: str = "auto") -> None:
    if export_format == GGUF and out.suffix != ".gguf":
        raise ConfigError(f"--format gguf writes one file: pass --out NAME.gguf (got {out})")
    if out.suffix == ".gguf":
        if out.exists() and not overwrite:
            raise ConfigError(f"{out} already exists: pass a new --out NAME.gguf or --force")
        if out.exists() and not manifest_path(out).is_file():
            raise ConfigError(f"{out} was not written by `compsafe compress`: refusing to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        return
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents:  # the export replaces its folder: never the one we stand in
        raise ConfigError(f"--out {out} is the current folder or holds it: pass a new folder to write the model into")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        if not overwrite:
            raise ConfigError(f"{out} already exists and is not empty: pass a new --out folder or --force")
        if not (out / MANIFEST_NAME).is_file():
            raise ConfigError(f"{out} is not a folder written by `compsafe compress`: refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)


def _strip_quantization(model: Any) -> None:
    """Drop a load-time quantization config (a GGUF source carries one): the saved weights are plain floats."""
    config = model.config
    if getattr(config, "quantization_config", None) is not None or "quantization_config" in config.__dict__:
        config.__dict__.pop("quantization_config", None)
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        with contextlib.suppress(AttributeError):  # a read-only property on some versions
            model.is_quantized = False


def save_model_folder(handle: Any, folder: Path) -> None:
    """``save_pretrained`` the model (safetensors) and its tokenizer into ``folder``."""
    model = handle.model
    _strip_quantization(model)
    model.save_pretrained(folder, safe_serialization=True)
    handle.tokenizer.save_pretrained(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_packed_folder(handle: Any, grids: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Write the variant in the compressed-tensors format (``export.packed``) with its config and tokenizer."""
    from compsafe.export.packed import write_packed

    return _save_with(handle, folder, lambda model: write_packed(model, grids, folder))


def save_gptq_folder(handle: Any, grids: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Write the variant in the GPTQ checkpoint format (``export.gptq``) with its config and tokenizer."""
    from compsafe.export.gptq import write_gptq

    return _save_with(handle, folder, lambda model: write_gptq(model, grids, folder))


def save_sparse_folder(handle: Any, report: Any, layout: str, folder: Path) -> dict[str, Any]:
    """Write a pruned variant in a compressed-tensors sparse layout (``export.sparse``) with config and tokenizer."""
    from compsafe.export.sparse import write_sparse

    info = _save_with(handle, folder, lambda model: write_sparse(
        model, list(report.sparse_layouts), report.sparsity, layout, folder, report.grids))
    return {**info, "loads_with": "compsafe (plain transformers with compressed-tensors >= 0.15 cannot)"}


def _save_with(handle: Any, folder: Path, write_weights: Any) -> dict[str, Any]:
    """``write_weights(model)`` (returns the manifest's packing record with the ``quantization_config``), then
    config.json carrying that config, the generation config and the tokenizer."""
    model = handle.model
    _strip_quantization(model)
    info = write_weights(model)
    _write_config(handle, folder, info.pop("quantization_config"))
    return info


def _write_config(handle: Any, folder: Path, quantization: dict[str, Any]) -> None:
    """config.json (with ``quantization``), generation config and tokenizer of ``handle`` into ``folder``."""
    model = handle.model
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    handle.tokenizer.save_pretrained(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["quantization_config"] = quantization
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _source_digest(handle: Any) -> str | None:
    """The digest of the files the base model was loaded from (a GGUF inside a folder: that file)."""
    from compsafe.integrity import weights_digest

    source_path = Path(handle.resolved_path)
    if source_path.is_dir() and handle.meta.get("gguf_file"):
        return weights_digest(source_path / handle.meta["gguf_file"])
    return weights_digest(source_path) if source_path.exists() else None


def export_variant(
    model_spec: str | None,
    recipe: str,
    out: Path | str,
    options: Any = None,
    calibration_spec: Any = None,
    *,
    overwrite: bool = False,
    progress: Any = None,
    export_format: str = "auto",
) -> Path:
    """Load ``model_spec``, compress it with ``recipe``, and write a model folder plus manifest at ``out``.

    ``options`` is a ``models.LoadOptions`` (device/dtype/safety switches; the weights are saved in the dtype
    the model was compressed in, so the folder reproduces the in-memory variant exactly); ``calibration_spec``
    a ``compress.CalibrationSpec`` used only when the method is calibrated. ``progress(message)`` hears the
    stages. Returns ``out``. User errors (bad recipe, unmatched +keep pattern, existing folder) are raised
    before any weight is written.
    """
    from compsafe.compress import CalibrationSpec, apply_recipe, build_calibration, needs_calibration, parse_recipe
    from compsafe.compress.registry import check_applicable
    from compsafe.models import LoadOptions, load_model

    say = progress or (lambda message: None)
    out = Path(out).expanduser()
    config = parse_recipe(recipe)  # fail on a bad recipe before loading anything
    check_format(export_format)
    _prepare_out(out, overwrite, export_format)
    options = options or LoadOptions()
    started = time.time()
    say(f"loading {model_spec or 'the embedded default model'}")
    handle = load_model(model_spec, options)
    source_digest = _source_digest(handle)
    check_applicable(handle.model, config)
    calibration = None
    if needs_calibration(config):
        say("sampling the calibration set")
        calibration = build_calibration(handle.tokenizer, calibration_spec or CalibrationSpec(), handle.max_length)
    say(f"compressing with {config.recipe}")
    report = apply_recipe(handle.model, config, calibration)
    return write_export(
        handle, model_spec, config, report, calibration, out, export_format=export_format, started=started,
        source_digest=source_digest, progress=say,
    )


def write_export(
    handle: Any,
    model_spec: str | None,
    config: Any,
    report: Any,
    calibration: Any,
    out: Path,
    *,
    export_format: str = "auto",
    started: float | None = None,
    source_digest: str | None = None,
    progress: Any = None,
    record: dict[str, Any] | None = None,
) -> Path:
    """Write the variant ``handle`` holds now (compressed as ``report`` says) at ``out`` with its manifest.

    ``export_variant`` compresses and calls this; so does quantization-aware recovery, whose weights come from
    training. ``record``: more provenance for the manifest (e.g. the training record), under its own keys.
    """
    from compsafe.integrity import state_digest

    say = progress or (lambda message: None)
    started = time.time() if started is None else started
    in_memory_digest = state_digest(handle.model)
    chosen = resolve_format(export_format, report, out)

    def manifest_of(packing: dict[str, Any] | None, folder: Path) -> dict[str, Any]:
        manifest = _manifest(handle, model_spec, config, report, calibration, chosen, packing, folder)
        return {**_finish_manifest(manifest, in_memory_digest, started, source_digest), **(record or {})}

    if chosen == GGUF:
        from compsafe.export.gguf_file import check_architecture

        check_architecture(handle.model)
        say(f"writing {out} (gguf)")
        return write_gguf_export(handle, report, out, manifest_of)
    with atomic_folder(out) as staging:
        say(f"writing {out} ({chosen})")
        packing = write_folder(handle, report, chosen, staging)
        if chosen in SPARSE:
            say(f"note: {PLAIN_TRANSFORMERS_NOTE}")
        manifest = manifest_of(packing, staging)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def write_folder(handle: Any, report: Any, chosen: str, folder: Path) -> dict[str, Any] | None:
    """Write the model in ``handle`` (compressed as ``report`` says) into ``folder`` in a folder format;
    returns what the manifest records about the packing (None for dense)."""
    folder.mkdir(parents=True, exist_ok=True)
    if chosen == COMPRESSED_TENSORS:
        return save_packed_folder(handle, report.grids, folder)
    if chosen == GPTQ:
        return save_gptq_folder(handle, report.grids, folder)
    if chosen in SPARSE:
        return save_sparse_folder(handle, report, chosen, folder)
    if report.stored_form is not None:  # a 16-bit or physically pruned copy; the measured model stays as it is
        from types import SimpleNamespace

        handle = SimpleNamespace(model=report.stored_form(handle.model), tokenizer=handle.tokenizer)
    save_model_folder(handle, folder)
    return None


def write_artefact(handle: Any, report: Any, where: Path) -> tuple[str, Path]:
    """The in-memory variant's files in the format ``auto`` picks (a llama.cpp block recipe: a GGUF), inside
    the empty folder ``where`` and without a manifest: what ``compsafe run --cost`` measures for a recipe."""
    llama = getattr(handle.model.config, "model_type", None) == "llama"  # the GGUF writer's scope
    chosen = auto_format(report, where / ("variant.gguf" if llama else "variant"))
    if chosen == GGUF:
        from compsafe.export.gguf_file import write_gguf

        write_gguf(handle, report.grids, report.extra.get("ggml_type"), where / "variant.gguf", base_gguf_of(handle))
        return chosen, where / "variant.gguf"
    write_folder(handle, report, chosen, where / "variant")
    return chosen, where / "variant"


def recipe_artefact_cost(handle: Any, report: Any) -> dict[str, Any]:
    """``models.cost`` figures of the in-memory variant's files (``write_artefact`` into a temporary folder,
    deleted after), with the format and bytes measured; ``{"error": ...}`` when they cannot be written."""
    import tempfile

    from compsafe.errors import CompsafeError
    from compsafe.models.cost import handle_cost
    from compsafe.models.storage import stored_size

    with tempfile.TemporaryDirectory(prefix="compsafe-artefact-") as tmp:
        try:
            chosen, path = write_artefact(handle, report, Path(tmp))
        except CompsafeError as exc:
            return {"error": f"cannot write the artefact: {exc}"}
        storage = stored_size(path) or {}
        return {**handle_cost(path, handle), "artefact_format": chosen,
                "artefact_bytes": storage.get("packed_size_bytes")}


def _finish_manifest(manifest: dict[str, Any], in_memory: str, started: float, source: str | None) -> dict[str, Any]:
    manifest.update(state_digest=in_memory, seconds=round(time.time() - started, 2))
    manifest["source"]["weights_digest"] = source
    return manifest


def write_gguf_export(handle: Any, report: Any, out: Path, manifest_of: Any) -> Path:
    """Write the GGUF file (``export.gguf_file``) through a temporary name, then its manifest beside it."""
    import os

    from compsafe.export.gguf_file import write_gguf

    staging = out.with_name(f".{out.name}.partial")
    try:
        packing = write_gguf(handle, report.grids, report.extra.get("ggml_type"), staging, base_gguf_of(handle))
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    manifest = manifest_of(packing, out)
    manifest_path(out).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def base_gguf_of(handle: Any) -> Path | None:
    """The GGUF file the base was loaded from (a ``.gguf`` path, or a catalog model shipped as one), else None."""
    from compsafe.models.catalog import NAMED_MODELS, package_dir

    if handle.meta.get("gguf_file"):
        return Path(handle.resolved_path) / handle.meta["gguf_file"]
    entry = NAMED_MODELS.get(handle.source)
    entry = getattr(entry, "base", entry)
    package, name = getattr(entry, "package", None), getattr(entry, "gguf_file", None)
    folder = package_dir(package) if package else None
    return folder / name if folder is not None and name and (folder / name).is_file() else None


def _manifest(handle: Any, model_spec: str | None, config: Any, report: Any, calibration: Any, chosen: str,
              packing: dict[str, Any] | None, folder: Path) -> dict[str, Any]:
    """What ``compsafe_manifest.json`` records about an export written to ``folder`` (see the module doc)."""
    from compsafe.integrity import weights_digest
    from compsafe.models.storage import folder_storage

    return {
        "format": MANIFEST_FORMAT,
        "compsafe_version": __version__,
        "created_unix": round(time.time()),
        "recipe": config.recipe,
        "method_config": config.to_dict(),
        "compression": _summary_of(report.to_dict()),
        "calibration": calibration.to_dict() if calibration is not None else None,
        "source": {
            "model": model_spec or handle.source,
            "resolved_path": handle.resolved_path,
            **{k: v for k, v in handle.meta.items() if isinstance(v, str | int | float)},
        },
        "dtype": str(handle.dtype).removeprefix("torch."),
        "export_format": chosen,
        **({"packing": packing} if packing else {}),
        "weights_digest": weights_digest(folder),
        "storage": folder_storage(folder),  # bits/weight and bytes of the files written (models.storage)
        "environment": {
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            **({"compressed-tensors": _version("compressed-tensors")} if packing and chosen != GPTQ else {}),
        },
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of an exported folder (``path`` is the folder or the manifest file)."""
    path = path / MANIFEST_NAME if path.is_dir() else manifest_path(path) if path.suffix == ".gguf" else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path} is not a compsafe variant manifest (format {MANIFEST_FORMAT})")
    return data


def manifest_summary(path: Path) -> dict[str, Any]:
    """What a run summary shows about an exported variant: its recipe, source and digests."""
    data = read_manifest(path)
    return {
        "recipe": data.get("recipe"),
        "source_model": data.get("source", {}).get("model"),
        "source_weights_digest": data.get("source", {}).get("weights_digest"),
        "calibration_digest": (data.get("calibration") or {}).get("digest"),
        "effective_bits_per_weight": data.get("compression", {}).get("effective_bits_per_weight"),
        "compsafe_version": data.get("compsafe_version"),
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
