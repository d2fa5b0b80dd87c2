"""A census as data, and the delta between two: no torch, so the gate can read it.

The counts are keyed `category name`, e.g. `op aten.convolution` (eager), `kernel
cpp_fused_cat` and `extern mkldnn._convolution_pointwise[relu]` (AOTInductor), `node
FusedConv` (ONNX Runtime), `primitive Convolution brgconv_avx512:f32` (OpenVINO), so a delta
reads as what changed: "+4 op aten.copy_", "-3 extern ...[relu], +3 extern ...[none]".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UNetDecoderError

#: Bump when what a census counts changes: censuses of two formats are not compared.
FORMAT = 1


@dataclass(frozen=True)
class Census:
    kind: str  # torch-eager, torch-aoti, onnxruntime, openvino (deploy.kind_of)
    counts: dict[str, int]
    flop: int | None = None  # of the model the entry was built from, one forward
    bytes: int | None = None  # eager: bytes of every tensor the operators returned
    format: int = FORMAT
    about: dict = field(default_factory=dict)  # the entry and the machine it was taken on

    @property
    def total(self) -> int:
        """Everything counted, one number: what asv tracks (`track_census`)."""
        return sum(self.counts.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Census:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def write(self, path: str | Path) -> Path:
        from ..files import write_atomically

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, self.to_json().encode())
        return path

    @classmethod
    def read(cls, path: str | Path) -> Census:
        try:
            return cls.from_json(Path(path).read_text())
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise UNetDecoderError(
                f"{path} is not a census ({type(e).__name__}: {e}); take it again with "
                "`unet-decoder census ... --json FILE`."
            ) from None


def _percent(before: int | None, after: int | None, what: str) -> list[str]:
    if not before or after is None or before == after:
        return []
    return [f"{(after - before) / before:+.1%} {what}"]


def census_delta(base: Census, head: Census, *, limit: int = 12) -> list[str]:
    """What changed from `base` to `head`, largest first: one short line per count that moved
    ("+4 op aten.copy_"), then FLOPs and bytes in percent. Empty when nothing did.

    Censuses of another kind or format are not comparable, and say so in one line."""
    if (base.kind, base.format) != (head.kind, head.format):
        return [f"not comparable: {base.kind} (census format {base.format}) against "
                f"{head.kind} (format {head.format})"]  # fmt: skip
    moved = {key: head.counts.get(key, 0) - base.counts.get(key, 0)
             for key in {*base.counts, *head.counts}}  # fmt: skip
    moved = {key: n for key, n in moved.items() if n}
    ranked = sorted(moved.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    lines = [f"{n:+d} {key}" for key, n in ranked[:limit]]
    if len(ranked) > limit:
        lines.append(f"... and {len(ranked) - limit} more counts")
    return lines + _percent(base.flop, head.flop, "FLOPs") + _percent(base.bytes, head.bytes,
                                                                       "bytes")  # fmt: skip


def census_root(conf_dir: str | Path) -> Path:
    return Path(conf_dir) / ".asv" / "census"


def census_path(conf_dir: str | Path, environment: str, commit: str, encoder: str,
                flags: str) -> Path:  # fmt: skip
    """Where an asv benchmark process files the census of a grid entry, and where the gate
    reads it: `.asv/census/<environment>/<commit>/<encoder>-<flags>.json` beside the asv
    config. asv stores one number per entry (`track_census`, the total); the counts behind
    it live here, keyed like asv's own results by environment and commit."""
    return census_root(conf_dir) / environment / commit / f"{encoder}-{flags}.json"
