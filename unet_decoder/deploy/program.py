"""A content key for AOTInductor packages: the digest of what the compiler is given.

A pull request that only moves code around (a docstring in the model, a renamed helper in a
pass) changes the files a build ran, but not the program it exports; compiling that program
again costs 28-62 s per entry on a 2-core machine and gives the same package. The digest
covers every input of the compile we know of, so an equal digest means the same package; an
input it does not cover can only make two digests differ, which costs a compile, never a
wrong reuse:

- the exported graph: each node's op, target and arguments, and the dtype, shape and strides
  of every value it produces (memory format included), its signature and calling spec;
- every weight, buffer and constant, byte for byte (calibrated int8 scales included);
- inductor's whole configuration as patched for this build, and the options of the call;
- the thread count, this CPU and its extensions, the OS and architecture, Python and torch;
- the module that turns a program into a package (`build.py`) and this one.

Source files are not in it; that is the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..machine import cpu_flags, cpu_name


def _value(value: Any) -> Any:
    """What a node produces, as far as code generation sees it."""
    if isinstance(value, torch.Tensor):
        return [str(value.dtype), list(value.shape), list(value.stride())]
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return repr(value)


def _tensor_bytes(digest: Any, name: str, tensor: Any) -> None:
    digest.update(name.encode())
    if not isinstance(tensor, torch.Tensor):
        digest.update(repr(tensor).encode())
        return
    tensor = tensor.detach().cpu()
    digest.update(repr((tensor.dtype, tuple(tensor.shape), tensor.stride())).encode())
    if tensor.is_quantized:
        digest.update(repr((tensor.qscheme(), tensor.q_scale(), tensor.q_zero_point())).encode())
        tensor = tensor.int_repr()
    flat = tensor.contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def program_digest(program: torch.export.ExportedProgram, options: Mapping[str, Any]) -> str:
    """The sha256 of everything `aoti_compile_and_package(program, inductor_configs=options)`
    reads; call it under the inductor config the compile will run with."""
    import torch._inductor.config as inductor

    digest = hashlib.sha256()
    for node in program.graph.nodes:
        digest.update(node.format_node().encode())
        digest.update(json.dumps(_value(node.meta.get("val"))).encode())
    for text in (program.graph_signature, program.call_spec, program.range_constraints):
        digest.update(str(text).encode())
    for name, tensor in sorted({**program.state_dict, **program.constants}.items()):
        _tensor_bytes(digest, name, tensor)
    save = getattr(inductor, "save_config_portable", inductor.get_config_copy)
    config = save()
    # filled in by AOTInductor's first compile in a process (the CPU's ISA, the platform: the
    # settings below name them), so a process that compiled before would digest differently
    config.pop("aot_inductor.metadata", None)
    settings = {
        "inductor": config,
        "options": dict(options),
        "threads": torch.get_num_threads(),
        "cpu": [cpu_name(), torch.backends.cpu.get_cpu_capability(), cpu_flags()],
        "platform": [platform.system(), platform.machine()],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    digest.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    here = Path(__file__).parent
    for module in ("build.py", "program.py"):
        digest.update((here / module).read_bytes())
    return digest.hexdigest()


def link_or_copy(source: Path, destination: Path) -> None:
    """Put a compiled package at `destination` without a second copy on disk where the file
    system allows (packages are written once and never edited in place)."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
