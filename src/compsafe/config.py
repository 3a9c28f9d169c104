"""RunConfig: everything that defines a run, from CLI flags or a YAML file, validated before any model loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from compsafe.errors import ConfigError

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

    def __post_init__(self) -> None:
        if self.profile is not None:
            from compsafe.profiles import load_profile

            chosen = load_profile(self.profile)
            self.variants = list(chosen.variants) if self.variants is None else self.variants
            self.probes = list(chosen.probes) if self.probes is None else self.probes
        self.variants = list(DEFAULT_VARIANTS) if self.variants is None else self.variants
        self.probes = list(DEFAULT_PROBES) if self.probes is None else self.probes
        self.out = Path(self.out)
        self.store = Path(self.store) if self.store else None
        self.calibration_spec()  # validates the calibration options before any model loads
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"unknown --executor {self.executor!r}: use local or ray")
        if self.gpus_per_task < 0:
            raise ConfigError("--gpus-per-task must be >= 0")
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
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of run options")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("variants", "probes"):
            if isinstance(data.get(key), str):
                data[key] = split_variants(data[key]) if key == "variants" else split_list(data[key])
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def split_variants(value: str) -> list[str]:
    """Split ``--variants`` on commas, except the commas inside a ``+keep=`` module list.

    ``int8,int4-g128+keep=layers.0,layers.29,mag-50`` is three variants: a fragment after a ``+keep`` variant
    continues its module list when it is not itself a recipe and not a path (module patterns hold no '/').
    """
    from compsafe.compress import parse_recipe
    from compsafe.errors import RecipeError

    variants: list[str] = []
    for part in split_list(value):
        if variants and "+keep" in variants[-1] and "/" not in part and "+" not in part:
            try:
                parse_recipe(part)
            except RecipeError:
                if not Path(part).expanduser().exists():
                    variants[-1] = f"{variants[-1]},{part}"
                    continue
        variants.append(part)
    return variants
