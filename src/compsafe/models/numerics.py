"""What, besides the weights and the inputs, changes the numbers a model computes.

Why: on CPU the reduction order of a matmul depends on the thread count, and in bfloat16 that is enough to
flip a few greedy decodes (the default model's over-refusal read 20.2% with 2 threads and 21.3-22.3% with
1). So the thread count, the torch version, the dtype and the device are part of every store key (records
computed under different settings are never mixed) and of the run summary (a reader can see them).
"""

from __future__ import annotations

from typing import Any

import torch


def numerics(dtype: torch.dtype | str, device: torch.device | str) -> dict[str, Any]:
    """The settings that change a model's outputs on the same weights and inputs."""
    device_type = device.type if isinstance(device, torch.device) else str(device)
    identity: dict[str, Any] = {
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "device": device_type,
    }
    if device_type == "cpu":
        identity["threads"] = torch.get_num_threads()
    else:
        identity["deterministic"] = torch.are_deterministic_algorithms_enabled()
    return identity
