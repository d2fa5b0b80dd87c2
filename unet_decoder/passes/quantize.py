"""int8 post-training static quantization for x86 CPUs (PT2E + X86InductorQuantizer).

PT2E moved from torch.ao to torchao. The quantized graph is only fast once inductor lowers
its quantize/dequantize pairs into oneDNN int8 kernels (VNNI), so the int8 pass always
compiles; without that it would run fp32 reference kernels and be slower than fp32. On CPUs
without VNNI, activations are quantized to 7 bits (`machine.int8_needs_reduced_range`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import FlagError
from ..machine import int8_needs_reduced_range


def quantize_int8(model: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    """Export, insert observers, calibrate on the given batches, convert to a q/dq graph."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    batches = list(calibration)
    exported = torch.export.export(model.eval(), (batches[0],)).module()
    quantizer = X86InductorQuantizer()
    config = get_default_x86_inductor_quantization_config(reduce_range=int8_needs_reduced_range())
    quantizer.set_global(config)
    try:
        prepared = prepare_pt2e(exported, quantizer)
    except AssertionError:
        # torchao's annotator asserts on adds whose other operand is not a tensor node, which
        # multi-branch RepVGG/MobileOne blocks produce until they are reparameterized.
        name = getattr(model, "encoder_name", type(model).__name__)
        raise FlagError(
            f"int8 quantization cannot annotate encoder {name!r} (torchao's X86InductorQuantizer "
            "fails on its multi-branch blocks); add the 'reparam' flag or drop 'int8'."
        ) from None
    with torch.no_grad():
        for batch in batches:
            prepared(batch)
    return convert_pt2e(prepared)
