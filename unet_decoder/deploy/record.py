"""`deployed.json`: how an artifact was made, what it needs to run, and how it measured.

An artifact is only as good as the machine it was tuned on: an AOTInductor package holds
C++ compiled for this CPU's vector extensions and this torch's ABI, and the choice of
precision and engine was measured here. The record keeps those facts so that
`load_deployed` can refuse an artifact that another CPU or library version would run
wrongly, slowly or not at all.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, ArtifactMismatchError
from ..machine import cpu_flags, cpu_name

RECORD_NAME = "deployed.json"
#: Bump when the folder's layout or the record's meaning changes. 2: `files`, every file the
#: artifact runs with its sha256, checked at every load.
FORMAT = 2

#: kind -> the file it runs and the libraries whose exact version it was made with.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch-aoti": ("model.pt2", ("torch",)),  # torch.export + AOTInductor, C++ for this CPU
    "torch-eager": ("weights.safetensors", ("torch", "timm")),  # rebuilt, passes re-applied
    "onnxruntime": ("model.onnx", ("onnxruntime",)),
    "openvino": ("model.xml", ("openvino",)),  # OpenVINO IR, weights in model.bin
}


def library_versions(kind: str) -> dict[str, str]:
    import importlib

    return {name: importlib.import_module(name).__version__ for name in KINDS[kind][1]}


def environment(kind: str) -> dict[str, Any]:
    """What the artifact depends on here: the CPU's capability and its kind's libraries."""
    import torch

    from ..version import __version__

    return {
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "unet_decoder": __version__,
        **library_versions(kind),
    }


@dataclass
class DeployRecord:
    """The contents of `deployed.json`."""

    kind: str
    file: str
    input_shape: list[int]  # (batch, channels, height, width): engines and AOTI plan for it
    flags: list[str]  # canonical passes; for torch-eager re-applied at load
    precision: str  # fp32, bf16 or int8
    threads: int
    model: dict[str, Any]  # UNet's constructor arguments (encoder_name, num_classes...)
    environment: dict[str, Any]
    budget: dict[str, float] = field(default_factory=dict)  # max_rel_error, min_agreement
    measured: dict[str, Any] = field(default_factory=dict)  # filled in by `unet-decoder tune`
    program: str | None = None  # torch-aoti: the digest of what it compiled (`program_digest`)
    files: dict[str, str] = field(default_factory=dict)  # every file it runs -> its sha256
    format: int = FORMAT

    @property
    def label(self) -> str:
        from ..passes.policy import flags_label

        return f"{self.kind} {flags_label(self.flags)}"

    def write(self, folder: Path) -> Path:
        path = Path(folder) / RECORD_NAME
        tmp = path.with_name(f".{RECORD_NAME}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, folder: Path) -> DeployRecord:
        folder = Path(folder)
        path = folder / RECORD_NAME
        if not folder.is_dir():
            raise ArtifactError(
                f"{folder} does not exist; make a deployed artifact with "
                f"`unet-decoder tune --out {folder}`."
            )
        if not path.is_file():
            raise ArtifactError(
                f"{folder} is not a deployed artifact (no {RECORD_NAME}); make one with "
                f"`unet-decoder tune --out {folder}`."
            )
        try:
            data = json.loads(path.read_text())
            record = cls(**data)
        except (ValueError, TypeError) as e:
            raise ArtifactError(
                f"{path} is damaged ({e}); run `unet-decoder tune` again."
            ) from None
        if record.format != FORMAT or record.kind not in KINDS:
            raise ArtifactError(
                f"{path} has format {record.format}, kind {record.kind!r}; this unet_decoder "
                f"reads format {FORMAT} ({', '.join(KINDS)}): run `unet-decoder tune` again."
            )
        check_files(record, folder)
        return record


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(record: DeployRecord, folder: Path) -> None:
    """Refuse, naming the file, a folder whose files are not the ones the record was written
    for: an artifact is code that `load_deployed` runs (an AOTInductor package is a shared
    library), so a modified, truncated or half-copied file is never loaded."""
    for name in sorted({record.file, *record.files}):
        path = folder / name
        if not path.is_file():
            raise ArtifactError(
                f"{folder} is incomplete: {name} is missing; copy the whole folder."
            )
        if name not in record.files or sha256_of(path) != record.files[name]:
            raise ArtifactError(
                f"{path} does not match the sha256 recorded in {RECORD_NAME} (modified, "
                "truncated or half-copied); build or copy the artifact again."
            )


def mismatches(record: DeployRecord) -> list[str]:
    """How this machine differs from the one the artifact was made on, in what matters."""
    here = environment(record.kind)
    made = record.environment
    found = []
    for key in ("cpu_capability", *KINDS[record.kind][1]):
        if made.get(key) != here.get(key):
            found.append(f"{key} {made.get(key)} (here {here.get(key)})")
    lost = [f for f in made.get("cpu_flags", []) if f not in here["cpu_flags"]]
    gained = [f for f in here["cpu_flags"] if f not in made.get("cpu_flags", [])]
    if lost or gained:
        change = ", ".join([*(f"no {f}" for f in lost), *(f"+{f}" for f in gained)])
        found.append(f"CPU extensions ({change} here)")
    return found


def check_environment(record: DeployRecord, folder: Path) -> None:
    """Refuse, in one line, an artifact made for another CPU or library version."""
    found = mismatches(record)
    if found:
        raise ArtifactMismatchError(
            f"{folder} was tuned for another machine: {'; '.join(found)}. Run "
            "`unet-decoder tune` on this machine, or load_deployed(..., strict=False) to run "
            "it anyway."
        )
