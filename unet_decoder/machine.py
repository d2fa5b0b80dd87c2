"""What this CPU is and can do: the facts a measured number or a tuned artifact depends on.

Kept at the bottom of the package (no torch import), beside `errors`, because both the
artifacts a user deploys and the measurements that chose them record the same facts.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: The /proc/cpuinfo flags that change which kernels a compiled model or an engine runs:
#: vector width, int8 dot products (VNNI), native bf16, and AMX tiles.
ISA_FLAGS = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The `ISA_FLAGS` this CPU has (empty where /proc/cpuinfo does not exist)."""
    present = set((_cpuinfo_field("flags") or "").split())
    return [flag for flag in ISA_FLAGS if flag in present]


def usable_cores() -> int:
    """Cores this process may run on (taskset and cgroup cpusets included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: Flags of the CPUs whose bf16 matmuls and convolutions run in hardware; elsewhere torch
#: emulates bf16 with fp32 arithmetic plus conversions, slower than plain fp32.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Flags of the CPUs with int8 dot products that sum without saturating (VNNI, AMX).
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def torch_has_native_bf16(flags: list[str] | None = None) -> bool:
    """Whether torch's bf16 convolutions run in hardware on this CPU (or on the CPU whose
    `cpu_flags()` a results file recorded): one of `NATIVE_BF16_FLAGS`. OpenVINO decides for
    itself (`engines.openvino.plugin_runs_bf16`)."""
    return bool(NATIVE_BF16_FLAGS & set(cpu_flags() if flags is None else flags))


def int8_needs_reduced_range() -> bool:
    """x86 CPUs without VNNI multiply u8 x s8 pairs into int16 sums that saturate
    (vpmaddubsw), which breaks int8 accuracy; 7-bit values (quant_max 127) cannot overflow.
    torchao's own advice: reduce_range=True "on earlier CPUs without VNNI"; ONNX Runtime's and
    NNCF's int8 follow the same rule, so every int8 path asks here."""
    return not INT8_DOT_FLAGS & set(cpu_flags())
