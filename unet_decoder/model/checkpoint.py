"""Local weights files: safetensors preferred, `.pt/.pth` only through `weights_only=True`.

Hubs are unreachable on many clusters, so a local file is the normal way in. Arbitrary
pickle is never executed: a `.pt` file that needs it is refused with a message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, CheckpointNotFoundError

#: Top-level prefixes of a whole-UNet state dict (what `UNet.state_dict()` writes).
MODEL_PREFIXES = ("encoder.", "decoder.", "head.")


def state_digest(module: torch.nn.Module, header: object = ()) -> str:
    """One hash of every weight and buffer (names included), plus `header`: the key under
    which exports and artifacts are cached, so that different weights never share one."""
    digest = hashlib.sha256(repr(header).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors or a weights-only torch file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"Checkpoint file not found: {str(path)!r}; pass checkpoint_path= an existing "
            ".safetensors or .pt/.pth file."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"Cannot read checkpoint {str(path)!r} ({first_line[:160]}); save it with "
            "safetensors.torch.save_file or torch.save(model.state_dict()) (weights only)."
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]  # common training-checkpoint wrappers
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is not a state dict of tensors; save model.state_dict()."
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def checkpoint_num_classes(path: str | Path) -> int | None:
    """The class count of a whole-UNet checkpoint (its head's output channels), else None."""
    head = read_state_dict(path).get("head.weight")
    return None if head is None else int(head.shape[0])


def is_whole_model(state: Mapping[str, torch.Tensor]) -> bool:
    """A whole-UNet checkpoint has only encoder./decoder./head. keys, and all three kinds."""
    return (
        bool(state)
        and all(any(k.startswith(p) for k in state) for p in MODEL_PREFIXES)
        and all(k.startswith(MODEL_PREFIXES) for k in state)
    )


def _preview(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def mismatch_message(
    path: str | Path, what: str, missing: list[str], unexpected: list[str], sizes: list[str]
) -> str:
    """One line naming the keys that do not fit, so the user can see the wrong file at once."""
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {_preview(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s): {_preview(unexpected)}")
    if sizes:
        parts.append(f"{len(sizes)} shape mismatch(es): {_preview(sizes, 2)}")
    return (
        f"Checkpoint {str(path)!r} does not match the {what}: {'; '.join(parts)}. "
        "Check the encoder name and in_chans/num_classes used when it was saved."
    )


_QUOTED = re.compile(r'"([^"]+)"')


def parse_load_error(message: str) -> tuple[list[str], list[str], list[str]]:
    """Missing, unexpected and size-mismatched keys from torch's load_state_dict RuntimeError."""
    missing: list[str] = []
    unexpected: list[str] = []
    sizes: list[str] = []
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("Missing key(s)"):
            missing = _QUOTED.findall(line)
        elif line.startswith("Unexpected key(s)"):
            unexpected = _QUOTED.findall(line)
        elif line.startswith("size mismatch for"):
            sizes.append(line.removeprefix("size mismatch for ").split(":")[0])
    return missing, unexpected, sizes
