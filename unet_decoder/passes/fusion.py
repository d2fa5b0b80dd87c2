"""Conv+BatchNorm folding and reparameterization checks, found from the real dataflow.

Which BatchNorm follows which conv is read from one forward pass (hooks see a BatchNorm whose
input *is* a conv's output tensor), not guessed from module names or registration order: that
works for every timm encoder, including pre-activation and dense ones where the order lies.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, bn name) for every BatchNorm2d that directly consumes a Conv2d's output."""
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor, int]] = {}
    seen: dict[str, set[str]] = {}

    def after_conv(module, _inputs, output):
        # Keep the output alive (ids stay unique) and its version: a tensor changed in place
        # after the conv (MobileOne sums branches with +=) is no longer the conv's output.
        produced[id(output)] = (names[module], output, output._version)

    def before_bn(module, inputs):
        source = produced.get(id(inputs[0]))
        x = inputs[0]
        direct = source is not None and source[1] is x and source[2] == x._version
        conv = source[0] if direct else ""
        seen.setdefault(names[module], set()).add(conv)

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    pairs = [(next(iter(s)), bn) for bn, s in seen.items() if len(s) == 1 and "" not in s]
    used = [conv for conv, _ in pairs]
    # A conv feeding two BatchNorms (or called twice) cannot absorb both: leave it alone.
    return [(conv, bn) for conv, bn in pairs if used.count(conv) == 1]


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What is left of a BatchNorm once its affine transform lives in the conv."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(bn, "act") and hasattr(bn, "drop"):  # timm's BatchNormAct2d: norm, drop, act
        return nn.Sequential(bn.drop, bn.act)
    return None  # an unknown subclass may do more than normalize: keep it


def fold_conv_bn(model: nn.Module, example_input: torch.Tensor) -> int:
    """Fold every Conv2d->BatchNorm2d pair in place (eval statistics); returns how many."""
    folded = 0
    for conv_name, bn_name in find_conv_bn_pairs(model, example_input):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        replacement = _bn_replacement(bn)
        if replacement is None or bn.running_mean is None or type(conv) is not nn.Conv2d:
            continue
        model.set_submodule(conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
        model.set_submodule(bn_name, replacement)
        folded += 1
    return folded


REPARAM_METHODS = ("reparameterize", "switch_to_deploy", "fuse")


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def multi_branch_blocks(model: nn.Module) -> list[str]:
    """Reparameterizable blocks that still run more than one conv branch (RepVGG, MobileOne)."""
    return [
        name
        for name, module in model.named_modules()
        if any(callable(getattr(module, m, None)) for m in REPARAM_METHODS)
        and sum(_has_conv(child) for child in module.children()) > 1
    ]
