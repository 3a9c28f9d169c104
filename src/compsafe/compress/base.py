"""What every compression method shares: its config object, its report, and the method protocol.

A recipe string ("int4-g128", "mag-50", "2:4") parses into one config dataclass; ``apply(model, config)``
transforms the model in place (torchao's ``quantize_(model, config)`` shape) and returns a
``CompressionReport`` that accounts for what was done to every weight it touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

import torch


@dataclass(frozen=True)
class CompressionConfig:
    """Base class of method configs. ``recipe`` is the canonical string that round-trips via the parser."""

    method: ClassVar[str] = ""

    @property
    def recipe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "recipe": self.recipe, **asdict(self)}


@dataclass
class LayerReport:
    """What happened to one weight matrix."""

    name: str
    numel: int
    bits_per_weight: float  # effective storage bits per weight including scales/zeros/masks metadata
    sparsity: float  # fraction of exactly-zero weights after compression
    relative_error: float  # ||W - W'||_F / ||W||_F
    # ||WX - W'X||_F / ||WX||_F on the calibration inputs X, for methods that see activations (else None)
    output_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompressionReport:
    """Accounting for a whole model after one method ran.

    ``effective_bits_per_weight`` averages over every target weight: the compressed ``layers`` and the
    ``kept_layers`` a ``+keep`` recipe protected (at their real bits: the dtype's, or int8's with ``+keep8``), so
    a protected variant is never reported as smaller than it is. ``packed_size_bytes`` is what the whole model
    (compressed layers packed at their bits, everything else at its current dtype) would occupy.
    """

    recipe: str
    method: str
    layers: list[LayerReport] = field(default_factory=list)
    packed_size_bytes: int = 0
    dense_size_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    kept_layers: list[LayerReport] = field(default_factory=list)
    # quantized layers' int grids by module name (``rtn.QuantGrid``): what a packed export stores; not serialised
    grids: dict[str, Any] = field(default_factory=dict, repr=False)
    # pruned layers' sparse layouts by module name (``models.sparse_bitmask``): what a sparse export writes
    sparse_layouts: dict[str, str] = field(default_factory=dict, repr=False)
    # the model as a dense export stores it, built as a new model (the measured one is left as it is): a 16-bit
    # copy for fp16/bf16, a physically smaller copy for structured pruning; None: the model as it is
    stored_form: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def compressed_numel(self) -> int:
        return sum(layer.numel for layer in self.layers)

    @property
    def target_numel(self) -> int:
        """Weights the recipe was about: compressed plus protected ones."""
        return self.compressed_numel + sum(layer.numel for layer in self.kept_layers)

    @property
    def effective_bits_per_weight(self) -> float:
        total = self.target_numel
        every = self.layers + self.kept_layers
        return sum(layer.bits_per_weight * layer.numel for layer in every) / total if total else 0.0

    @property
    def sparsity(self) -> float:
        total = self.target_numel
        every = self.layers + self.kept_layers
        return sum(layer.sparsity * layer.numel for layer in every) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "method": self.method,
            "effective_bits_per_weight": self.effective_bits_per_weight,
            "sparsity": self.sparsity,
            "compressed_numel": self.compressed_numel,
            "packed_size_bytes": self.packed_size_bytes,
            "dense_size_bytes": self.dense_size_bytes,
            "layers": [layer.to_dict() for layer in self.layers],
            **(
                {
                    "kept_numel": self.target_numel - self.compressed_numel,
                    "kept_layers": [k.to_dict() for k in self.kept_layers],
                }
                if self.kept_layers
                else {}
            ),
            **({"extra": self.extra} if self.extra else {}),
        }


class CompressionMethod(Protocol):
    """A registered method: parses its recipe strings and applies its config to a model in place.

    Every built-in method subclasses ``compress.template.LinearMethod``, which implements ``apply``."""

    name: ClassVar[str]
    grammar: ClassVar[str]  # human-readable recipe grammar, shown by `compsafe variants`
    examples: ClassVar[tuple[str, ...]]

    def parse(self, recipe: str) -> CompressionConfig | None:
        """Return a config when ``recipe`` belongs to this method, else None."""

    def apply(
        self, model: torch.nn.Module, config: CompressionConfig, calibration: Any = None
    ) -> CompressionReport:
        """Compress ``model`` in place and account for it (calibrated methods use ``calibration``)."""
