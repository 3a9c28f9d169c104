"""The shared skeleton of every compression method: one transform per target linear layer.

A method is a config dataclass (its ``method`` ClassVar is the method's one name) plus a ``LinearMethod``
subclass that parses recipes into that config and says what to do to one weight matrix
(``compress_layer``). ``apply`` does the rest the same way for every method: find the targets (respecting
``+keep`` and ``only`` through ``compress.targets``), snapshot each weight in float32, write the new values
back in the weight's dtype, account bits and packed bytes, and build the ``CompressionReport``. Methods that
need activations name the statistics they use (``needs``) and are driven block by block through
``compress.sequential`` on the calibration set; the others run layer by layer without one.

``register(MyMethod())`` adds a method to ``METHODS`` under its config's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import (
    dense_size_bytes,
    dtype_bits,
    packed_size_bytes,
    relative_error,
    storage_key,
    zero_fraction,
)
from compsafe.compress.base import CompressionConfig, CompressionReport, LayerReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.hessian import output_error
from compsafe.compress.registry import METHODS
from compsafe.compress.sequential import CompressBlock, LinearInputs, compress_sequentially
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from compsafe.memory import trim_freed_memory
from compsafe.models.sparse_bitmask import BITMASK, BITMASK_24, encoded_bytes

if TYPE_CHECKING:
    from compsafe.compress.rtn import QuantGrid


@dataclass
class Layer:
    """One target linear layer as a method sees it."""

    name: str
    weight: torch.Tensor  # float32 ``[out, in]`` copy of the weights (modify freely)
    dtype: torch.dtype  # the dtype the weights are stored and written back in
    stats: LinearInputs | None = None  # calibration statistics (calibrated methods only)


@dataclass
class LayerOutcome:
    """What a method did to one ``[out, in]`` weight: its new values and their storage cost."""

    weight: torch.Tensor  # the new values (any float dtype); written back in the weight's own dtype
    bits_per_weight: float  # effective storage bits per weight, scales/zeros/masks included
    packed_bytes: int | None = None  # bytes of the packed layer; None: stored at its dtype
    zero_mask: torch.Tensor | None = None  # positions forced to exact zero after the write-back (pruning)
    hessian: torch.Tensor | None = None  # when given, the report carries the output error on these inputs
    grid: QuantGrid | None = None  # quantizers: the int grid the new values sit on (a packed export reads it)
    # pruning: the sparse layout its zeros are stored in (``models.sparse_bitmask``); its bits and bytes are
    # then counted from the stored weight, exactly as the export writes it
    sparse_layout: str | None = None


class LinearMethod:
    """Base class of the registered compression methods (see the module docstring)."""

    config_type: ClassVar[type[CompressionConfig]]
    grammar: ClassVar[str]  # human-readable recipe grammar, shown by `compsafe variants`
    examples: ClassVar[tuple[str, ...]]
    needs: ClassVar[frozenset[str]] = frozenset()  # LinearInputs statistics; non-empty: calibrated
    seeded: ClassVar[bool] = False  # the block pass samples rows with the calibration seed (else seed 0)

    @property
    def name(self) -> str:
        return self.config_type.method

    @property
    def needs_calibration(self) -> bool:
        return bool(self.needs)

    def parse(self, recipe: str) -> CompressionConfig | None:  # pragma: no cover - every method overrides
        """A config when ``recipe`` belongs to this method, else None."""
        raise NotImplementedError

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: Any) -> Any:
        """Checks and state shared by all layers (e.g. a global threshold); raises ``RecipeError``."""
        return None

    def calibrate(self, model: nn.Module, config: Any, state: Any, calibration: CalibrationSet) -> None:
        """Statistics beyond the per-layer ones of the sequential pass, taken from the *uncompressed* model before
        any layer changes (Fair-GPTQ's paired-input differences); stored in ``state``. Default: none."""

    def compress_layer(self, layer: Layer, config: Any, state: Any) -> LayerOutcome:  # pragma: no cover
        """The new values of one layer (every method overrides this)."""
        raise NotImplementedError

    def extra(self, config: Any, state: Any) -> dict[str, Any]:
        """Method-specific facts for the report's ``extra``."""
        return {}

    def block_compressor(self, config: Any, state: Any, one: Any) -> CompressBlock | None:
        """Calibrated methods that must treat a block's layers together (AWQ folds scales across them) return
        a ``compress.sequential.CompressBlock`` that calls ``one(name, module, stats)`` per member; None: each
        layer is compressed on its own."""
        return None

    @torch.no_grad()
    def apply(
        self, model: nn.Module, config: CompressionConfig, calibration: CalibrationSet | None = None
    ) -> CompressionReport:
        """Compress ``model`` in place with ``config`` and account for every weight touched."""
        assert isinstance(config, self.config_type), f"{self.name} cannot apply {type(config).__name__}"
        include_head = bool(getattr(config, "include_lm_head", False))
        state = self.prepare(model, compressible_linears(model, include_lm_head=include_head), config)
        dense = dense_size_bytes(model)
        packed: dict[tuple[int, int, torch.dtype], int] = {}
        grids: dict[str, QuantGrid] = {}
        layouts: dict[str, str] = {}

        def one(name: str, module: nn.Module, stats: LinearInputs | None = None) -> LayerReport:
            view = weight_view(module)
            original = view.to(torch.float32, copy=True)
            outcome = self.compress_layer(Layer(name, original.clone(), view.dtype, stats), config, state)
            view.copy_(outcome.weight.to(view.dtype))
            if outcome.zero_mask is not None:
                view.masked_fill_(outcome.zero_mask, 0)
            bits = outcome.bits_per_weight
            if outcome.sparse_layout is not None:
                layouts[name] = outcome.sparse_layout
                outcome.packed_bytes = encoded_bytes(view, outcome.sparse_layout)
                bits = 8 * outcome.packed_bytes / view.numel()
            if outcome.packed_bytes is not None:
                packed[storage_key(module.weight)] = outcome.packed_bytes
            if outcome.grid is not None:
                grids[name] = outcome.grid.on_cpu()
            hessian = outcome.hessian
            report = LayerReport(
                name=name,
                numel=view.numel(),
                bits_per_weight=bits,
                sparsity=zero_fraction(view),
                relative_error=relative_error(original, view),
                output_error=output_error(original, view.float(), hessian) if hessian is not None else None,
            )
            # this layer's float32 temporaries go back to the OS before the next layer's are made: glibc would
            # otherwise keep them, and the heap grew by ~230 MiB over one int8 build of compsafe-demo
            trim_freed_memory()
            return report

        if self.needs:
            if calibration is None:
                raise RecipeError(f"{config.recipe} needs calibration data: pass a CalibrationSet")
            seed = calibration.spec.seed if self.seeded else 0
            self.calibrate(model, config, state, calibration)
            layers = compress_sequentially(
                model, calibration.input_ids, one, needs=set(self.needs), include_lm_head=include_head, seed=seed,
                compress_block=self.block_compressor(config, state, one),
            )
        else:
            layers = [one(name, module) for name, module in compressible_linears(model, include_lm_head=include_head)]
        return CompressionReport(
            recipe=config.recipe,
            method=self.name,
            layers=layers,
            packed_size_bytes=packed_size_bytes(model, packed),
            dense_size_bytes=dense,
            extra=self.extra(config, state),
            grids=grids,
            sparse_layouts=layouts,
        )


def sparse_layout(nm: Any) -> str:
    """The layout a pruned layer is stored in: ``sparse-24-bitmask`` for 2:4 (``nm`` an ``NMConfig``), else the
    ``sparse-bitmask`` (1 bit per weight plus the non-zero values, any pattern)."""
    return BITMASK_24 if nm is not None and (nm.n, nm.m) == (2, 4) else BITMASK


def pruned(layer: Layer, zero_mask: torch.Tensor, nm: Any = None, weight: torch.Tensor | None = None) -> LayerOutcome:
    """A pruned layer: ``weight`` (default: unchanged) with ``zero_mask`` zeroed, accounted in the sparse layout
    the export writes (``sparse_layout``; its bytes are counted from the stored weight by ``LinearMethod``)."""
    values = layer.weight if weight is None else weight
    return LayerOutcome(values, float(dtype_bits(layer.dtype)), zero_mask=zero_mask, sparse_layout=sparse_layout(nm))


def register(method: LinearMethod) -> LinearMethod:
    """Add ``method`` to ``METHODS`` under its config's name (the one place the name is written)."""
    METHODS.register(method.name)(method)
    return method
