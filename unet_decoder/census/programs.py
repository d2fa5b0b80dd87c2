"""What a built artifact runs, read from the artifact itself (no timing, no counters).

- AOTInductor: the generated wrapper's calls. Each `cpp_fused_*` kernel (its trailing index
  dropped, so `cpp_fused_cat` x4 reads as one line), each oneDNN or aten extern with the
  post-ops it fused (`mkldnn._convolution_pointwise[relu]`: the ReLU ran inside the conv),
  and each op the proxy executor runs, named from the package's own extern-node table.
- ONNX Runtime: the optimized graph the session runs (`optimized_model_filepath`), by op type
  and domain: FusedConv, NCHWc reorders, QLinearConv...
- OpenVINO: the compiled model's runtime graph, by layer type, the primitive that runs it
  (`jit_avx512`, `brgconv_avx512_amx`...) and its runtime precision.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

_KERNEL_CALL = re.compile(r"^\s+(cpp_fused\w*?)(?:_\d+)?\(", re.MULTILINE)
_EXTERN_CALL = re.compile(r"\baoti_torch_cpu_(\w+)\((.*)\)\);\s*$", re.MULTILINE)
_PROXY_CALL = re.compile(r"aoti_torch_proxy_executor_call_function\(proxy_executor,\s*(\d+)")
_QUOTED = re.compile(r'"([^"]*)"')


def _extern_name(shim: str) -> str:
    """`mkldnn__convolution_pointwise` -> `mkldnn._convolution_pointwise`; other C shims
    (aten's, `_qconv_pointwise_tensor`) keep the shim's name."""
    for namespace in ("mkldnn", "onednn", "quantized"):
        if shim.startswith(namespace + "_"):
            return f"{namespace}.{shim[len(namespace) + 1 :]}"
    return shim


def aoti_counts(package: str | Path) -> Counter:
    """The census of an AOTInductor package (a .pt2 file) from its generated wrapper."""
    counts: Counter = Counter()
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        for wrapper in (n for n in names if n.endswith(".wrapper.cpp")):
            code = archive.read(wrapper).decode()
            table = wrapper[: -len(".cpp")] + ".json"
            nodes = json.loads(archive.read(table))["nodes"] if table in names else []
            counts.update(f"kernel {name}" for name in _KERNEL_CALL.findall(code))
            for shim, args in _EXTERN_CALL.findall(code):
                post_ops = ",".join(s for s in _QUOTED.findall(args) if s)
                counts[f"extern {_extern_name(shim)}[{post_ops}]"] += 1
            for index in _PROXY_CALL.findall(code):
                target = nodes[int(index)]["node"]["target"] if int(index) < len(nodes) else index
                counts[f"extern {target}"] += 1
    return counts


def onnxruntime_counts(model: str | Path, threads: int) -> Counter:
    """The census of an ONNX file as ONNX Runtime runs it here: its optimized graph's nodes."""
    import onnx
    import onnxruntime as ort

    from ..engines.onnxruntime import session_options

    options = session_options(threads)
    with tempfile.TemporaryDirectory(prefix="unet-decoder-census-") as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    return Counter(f"node {f'{n.domain}.' if n.domain else ''}{n.op_type}" for n in graph.node)


def openvino_counts(compiled) -> Counter:
    """The census of an OpenVINO compiled model: its runtime graph's primitives."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()

        def field(name: str, info=info) -> str:
            return str(info[name].astype(str)) if name in info else "?"

        layer = field("layerType")
        if layer in ("Input", "Parameter", "Output", "Result", "Const", "Constant"):
            continue
        counts[f"primitive {layer} {field('primitiveType')}:{field('runtimePrecision')}"] += 1
    return counts
