"""Find and build one lm-evaluation-harness task: a shipped example, a registered lm-eval name, or a task YAML.

Why its own module: lm-eval's datasets come from the Hugging Face hub, which many machines that run compsafe
cannot reach. A task YAML can read local files instead (``dataset_path: json`` with ``dataset_kwargs:
{data_files: ...}``); relative data paths are read against the YAML's folder (lm-eval reads them against the
working directory, so a task folder would only work from one place), and a dataset that cannot be loaded
is one line saying how to point the task at local data, not a hub traceback.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path
from typing import Any

from compsafe.errors import ConfigError, DataFileError, UnknownNameError

SHIPPED_PACKAGE = "compsafe.data"
SHIPPED_FOLDER = "lmeval"  # compsafe/data/lmeval/<task>.yaml: offline examples, found by their file name
DEFAULT_TASK = "compsafe"
INSTALL_HINT = "pip install 'compsafe[lmeval]' (or pip install lm-eval==0.4.13)"
LOCAL_DATA_HINT = (
    "point the task at local files: a task YAML with `dataset_path: json` and "
    "`dataset_kwargs: {data_files: {test: items.jsonl}}` (paths relative to the YAML), run as "
    "--probes lmeval:my_task.yaml (docs/lmeval.md)"
)


def require_lm_eval() -> None:
    """lm-eval is an optional extra: say how to install it instead of failing on an import."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ConfigError(f"--probes lmeval needs lm-evaluation-harness: {INSTALL_HINT}") from None


def shipped_task(name: str) -> Path | None:
    """The shipped example task YAML called ``name`` (``compsafe``: data/lmeval/compsafe.yaml), if any."""
    folder = importlib.resources.files(SHIPPED_PACKAGE).joinpath(SHIPPED_FOLDER)
    candidate = folder.joinpath(f"{name}.yaml")
    return Path(str(candidate)) if candidate.is_file() else None


def is_task_path(spec: str) -> bool:
    return spec.lower().endswith((".yaml", ".yml")) or "/" in spec or Path(spec).is_file()


def localize_data_files(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``dataset_kwargs.data_files`` paths (and a ``dataset_path`` folder) that exist relative to the task's own
    folder, made absolute; other paths (absolute, or relative to the working directory) and hub names are kept."""

    def local(value: Any) -> Any:
        if isinstance(value, str) and not Path(value).is_absolute():
            beside = folder / value
            return str(beside.resolve()) if beside.exists() else value
        if isinstance(value, list):
            return [local(v) for v in value]
        if isinstance(value, dict):
            return {k: local(v) for k, v in value.items()}
        return value

    config = dict(config)
    kwargs = config.get("dataset_kwargs")
    if isinstance(kwargs, dict) and "data_files" in kwargs:
        config["dataset_kwargs"] = {**kwargs, "data_files": local(kwargs["data_files"])}
    if isinstance(config.get("dataset_path"), str) and (folder / config["dataset_path"]).is_dir():
        config["dataset_path"] = local(config["dataset_path"])
    return config


def _registered_config(spec: str) -> tuple[dict[str, Any] | str, Path | None]:
    """A registered lm-eval name's config (with the folder its YAML lives in), or the name itself for a Python task."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager()
    entry = manager.task_index.get(spec)
    if entry is None:
        close = difflib.get_close_matches(spec, manager.all_subtasks, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"lmeval:{spec} is neither an lm-eval task name nor a task YAML path.{hint} "
            f"(`lm-eval ls tasks` lists names; shipped offline example: lmeval:{DEFAULT_TASK})"
        )
    if spec not in manager.all_subtasks:
        raise ConfigError(
            f"lmeval:{spec} is an lm-eval group or tag of several tasks: name one task (one probe is one task)"
        )
    if entry.yaml_path is None:
        return spec, None
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(entry.yaml_path, resolve_func=True), Path(entry.yaml_path).parent


def _file_config(path: Path, spec: str) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    if not path.is_file():
        raise DataFileError(f"lmeval:{spec}: no such task file {str(path)!r}")
    try:
        config = load_yaml(path, resolve_func=True)
    except Exception as exc:  # noqa: BLE001 - lm-eval's loader raises yaml, OS and import errors alike
        raise DataFileError(f"lmeval:{spec}: the task YAML cannot be read: {_one_line(exc)}") from None
    if "task" not in config:
        raise DataFileError(f"lmeval:{spec}: a task YAML needs a `task:` name (groups are not supported)")
    return config


def _one_line(exc: BaseException, width: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:width]}"


def _is_data_error(exc: BaseException) -> bool:
    """Whether building the task failed because its dataset could not be fetched or read."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError | ConnectionError) or module in ("datasets", "huggingface_hub", "fsspec")


def load_task(spec: str | None) -> Any:
    """The lm-eval ``Task`` that ``spec`` names (None: the shipped example), built with its dataset loaded.

    Raises one-line CompsafeErrors: lm-eval missing, an unknown name, a group, an unreadable YAML, and a dataset
    that cannot be loaded (with how to point the task at local files).
    """
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    spec = (spec or DEFAULT_TASK).strip()
    shipped = shipped_task(spec)
    if shipped is not None or is_task_path(spec):
        path = shipped or Path(spec).expanduser()
        config: dict[str, Any] | str = _file_config(path, spec)
        folder: Path | None = path.resolve().parent
    else:
        config, folder = _registered_config(spec)
    if isinstance(config, dict) and folder is not None:
        config = localize_data_files(config, folder)
    dataset = config.get("dataset_path") if isinstance(config, dict) else None
    try:
        loaded = (
            TaskManager(include_defaults=False).load(config) if isinstance(config, dict) else TaskManager().load(config)
        )
    except Exception as exc:  # noqa: BLE001 - turned into one actionable line below
        if _is_data_error(exc):
            raise DataFileError(
                f"lmeval:{spec}: the task's dataset {dataset!r} is not available ({_one_line(exc)}); {LOCAL_DATA_HINT}"
            ) from None
        raise ConfigError(f"lmeval:{spec}: lm-eval cannot build the task: {_one_line(exc)}") from None
    tasks = loaded["tasks"]
    if len(tasks) != 1:
        raise ConfigError(f"lmeval:{spec} defines {len(tasks)} tasks: name one task (one probe is one task)")
    return next(iter(tasks.values()))
