"""RunConfig: everything that defines a run, from CLI flags or a YAML file, validated before any model loads."""

from __future__ import annotations

import functools
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from compsafe import paths
from compsafe.errors import CompsafeError, ConfigError

DEFAULT_VARIANTS = ("int8", "int4-g128", "mag-50", "2:4")
DEFAULT_PROBES = ("refusal", "over_refusal", "perplexity", "mcqa")
# the refusal judge when none is given: the only offline judge that meets the bar on the judge test set (>= 90%
# overall, >= 80% on hard cases, >= 80% of degenerate responses `neither`; docs/judges.md)
DEFAULT_JUDGE = "ensemble"


@dataclass
class RunConfig:
    model: str | None = None  # None: the embedded default (compsafe.models.catalog.DEFAULT_MODEL)
    variants: list[str] | None = None  # None: the profile's, else DEFAULT_VARIANTS
    probes: list[str] | None = None  # None: the profile's, else DEFAULT_PROBES
    profile: str | None = None  # threat-model profile (compsafe/profiles/*.yaml): default probes/variants/policy
    out: Path = Path("runs/latest")
    store: Path | None = None  # default: <out>/store.sqlite; share one to reuse records across runs
    limit: int | None = None
    judge: str = DEFAULT_JUDGE
    batch_size: int = 32
    max_new_tokens: int = 48
    # refusal probes decide items with |refusal margin| >= this (nats) without generating (None: generate all)
    screen_margin: float | None = None
    seed: int = 0
    bootstrap_resamples: int = 2000
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    trust_remote_code: bool = False
    # calibration set for calibrated methods (GPTQ, AWQ, Wanda, SparseGPT); built only when one is run
    calibration: str = "compsafe"  # "compsafe" (shipped text) or a .txt/.jsonl file
    calibration_samples: int = 32
    calibration_seq_len: int = 256
    safety_calibration: float = 0.0  # fraction of calibration samples that are harmful request + refusal
    # where the (variant, probe) jobs run: "local" (this process) or "ray" (tasks on a Ray cluster)
    executor: str = "local"
    ray_address: str | None = None  # None: start a local Ray instance; "auto" or "ray://host:10001" to join one
    gpus_per_task: float = 0.0
    ray_resources: dict[str, float] | None = None  # custom Ray resources each task requests (pins tasks to nodes)
    # measure each folder/.gguf model's own cost (load time, peak memory, tokens/s) in a child process
    artefact_cost: bool = False
    # greedy variants verify the base's answers as drafts (exact; models.drafting); False: plain generation
    draft: bool = True

    def __post_init__(self) -> None:
        for name, value in validate_options(asdict_shallow(self), origin=None).items():
            setattr(self, name, value)
        if self.profile is not None:
            from compsafe.profiles import load_profile

            chosen = load_profile(self.profile)
            self.variants = list(chosen.variants) if self.variants is None else self.variants
            self.probes = list(chosen.probes) if self.probes is None else self.probes
        self.variants = list(DEFAULT_VARIANTS) if self.variants is None else expand_variant_ranges(self.variants)
        self.probes = list(DEFAULT_PROBES) if self.probes is None else self.probes
        self.out = Path(self.out)
        self.store = Path(self.store) if self.store else None
        self.calibration_spec()  # validates the calibration options before any model loads
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"unknown --executor {self.executor!r}: use local or ray")
        if self.gpus_per_task < 0:
            raise ConfigError("--gpus-per-task must be >= 0")
        if self.ray_resources and any(v <= 0 for v in self.ray_resources.values()):
            raise ConfigError("--ray-resources amounts must be > 0, e.g. worker_node=1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("--limit must be a positive number of items per probe")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be >= 1")
        if self.max_new_tokens < 1:
            raise ConfigError("--max-new-tokens must be >= 1")
        if self.screen_margin is not None and not 0 <= self.screen_margin < float("inf"):
            raise ConfigError("--screen-margin must be a finite number of nats >= 0 (e.g. 3); omit it to generate all")
        if not self.probes:
            raise ConfigError("no probes selected: pass --probes refusal,perplexity (see `compsafe probes`)")
        if len(set(self.variants)) != len(self.variants):
            raise ConfigError("a variant is listed twice in --variants")

    def calibration_spec(self) -> Any:
        """The ``CalibrationSpec`` these options describe (seeded with the run's seed)."""
        from compsafe.compress.calibration import CalibrationSpec

        return CalibrationSpec(
            source=self.calibration,
            n_samples=self.calibration_samples,
            seq_len=self.calibration_seq_len,
            seed=self.seed,
            safety_fraction=self.safety_calibration,
        )

    @property
    def store_path(self) -> Path:
        return self.store or self.out / "store.sqlite"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        data["store"] = str(self.store_path)
        return data

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> RunConfig:
        """The file's options, each validated on its own (even where a flag overrides it), then the flags."""
        data = read_yaml_mapping(path, "config")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("variants", "probes"):
            if isinstance(data.get(key), str):
                data[key] = split_variants(data[key], key) if key == "variants" else split_list(data[key], key)
        data = validate_options(data, origin=str(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def read_yaml_mapping(path: Path, what: str, error: type[CompsafeError] = ConfigError) -> dict[str, Any]:
    """A YAML file that must hold one mapping: unreadable, non-UTF-8, malformed, over-nested or duplicate-key
    files fail in one line (``error``) naming the file (``compsafe.yamlfile``)."""
    from compsafe.yamlfile import read_yaml

    data = read_yaml(Path(path), what, error)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a mapping, got {type(data).__name__}")
    return data


def asdict_shallow(config: RunConfig) -> dict[str, Any]:
    """Field values as they are (``dataclasses.asdict`` would deep-copy lists and recurse)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def flag_name(option: str) -> str:
    return "--address" if option == "ray_address" else "--" + option.replace("_", "-")


@functools.cache
def _options_model() -> Any:
    """A pydantic model of RunConfig's fields, built from its type hints: strict types (no bool for an int,
    no number for a string, finite floats); paths accept strings."""
    from pydantic import ConfigDict, Strict, create_model

    hints = typing.get_type_hints(RunConfig)
    definitions: dict[str, Any] = {}
    for option in fields(RunConfig):
        hint = hints[option.name]
        if hint in (Path, Path | None):
            hint = typing.Annotated[Path, Strict(False)] | None
        definitions[option.name] = (hint, None)
    return create_model(
        "RunOptions", __config__=ConfigDict(strict=True, extra="forbid", allow_inf_nan=False), **definitions
    )


def validate_options(values: dict[str, Any], origin: str | None) -> dict[str, Any]:
    """The options in ``values`` type-checked (pydantic) and their strings checked for emptiness; a
    ``ConfigError`` naming the option (``--limit`` or ``FILE: limit``) and the offending value otherwise."""
    from pydantic import ValidationError

    for name, value in values.items():
        label = f"{origin}: {name}" if origin else flag_name(name)
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if not isinstance(text, str):
                continue
            if not text.strip() and isinstance(value, list):
                raise ConfigError(f"{label} has an empty entry: {value!r}")
            if not text.strip():
                raise ConfigError(f"{label} is empty: give a value or leave the option out for its default")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"{label} {text!r} holds bytes that are not UTF-8 text") from None
            if "\x00" in text:
                raise ConfigError(f"{label} {text!r} holds a NUL character")
    try:
        checked = _options_model().model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        name = f"{origin}: {where}" if origin else flag_name(str(error["loc"][0]))
        got = repr(error.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        raise ConfigError(f"{name}: {error['msg'].lower()} (got {got})") from None
    return {name: getattr(checked, name) for name in values}


def split_list(value: str, option: str = "probes") -> list[str]:
    """Comma-separated names; an empty entry (``int4,,int8``, a trailing comma) is an error, not dropped.
    A value that is only blanks means "none"."""
    if value == "":
        return []
    if not value.strip():
        raise ConfigError(f"{flag_name(option)} is only blanks: pass '' for none, or a comma-separated list")
    parts = [part.strip() for part in value.split(",")]
    if any(not part for part in parts):
        raise ConfigError(f"{flag_name(option)} {value!r} has an empty entry: remove the extra comma")
    return parts


def split_resources(value: str) -> dict[str, float]:
    """``--ray-resources worker_node=1,big_mem=0.5`` -> {"worker_node": 1.0, "big_mem": 0.5}."""
    resources: dict[str, float] = {}
    for part in split_list(value, "ray_resources"):
        name, _, amount = part.partition("=")
        try:
            resources[name.strip()] = float(amount)
        except ValueError:
            raise ConfigError(f"--ray-resources {part!r} is not NAME=AMOUNT, e.g. worker_node=1") from None
        if not name.strip():
            raise ConfigError(f"--ray-resources {part!r} has no resource name, e.g. worker_node=1")
    return resources


def split_variants(value: str, option: str = "variants") -> list[str]:
    """Split ``--variants`` on commas, except the commas inside a ``+keep=`` module list.

    ``int8,int4-g128+keep=layers.0,layers.29,mag-50`` is three variants: a fragment after a ``+keep`` variant
    continues its module list when it is not itself a recipe and not a path (module patterns hold no '/').
    """
    from compsafe.compress import parse_recipe
    from compsafe.errors import RecipeError

    variants: list[str] = []
    for part in split_list(value, option):
        if variants and "+keep" in variants[-1] and "/" not in part and "+" not in part:
            try:
                parse_recipe(part)
            except RecipeError:
                if not paths.exists(part):
                    variants[-1] = f"{variants[-1]},{part}"
                    continue
        variants.append(part)
    return expand_variant_ranges(variants)


def expand_variant_ranges(variants: list[str]) -> list[str]:
    """``mag-10..60/10`` -> mag-10, mag-20, ..., mag-60 (``compress.ranges``); a path that exists is kept as is."""
    from compsafe.compress.ranges import expand_range

    return [name for v in variants for name in ([v] if paths.exists(v) else expand_range(v))]
