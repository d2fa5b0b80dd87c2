"""Results files written whole or not at all, and output paths checked before the work.

A run that measured for minutes must neither leave a half-written file behind when it is
interrupted nor find out at the end that it cannot write: every command that writes a file
uses these two.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UNetDecoderError


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(path: Path | None, option: str) -> None:
    """Refuse an unwritable path before minutes of measuring, not after."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UNetDecoderError(f"{option} {path} is a directory; give a file name.")
    if not parent.is_dir():
        raise UNetDecoderError(f"{option} {path}: folder {parent} does not exist; create it first.")
    try:  # really try: os.access says yes to root even on read-only mounts
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        raise UNetDecoderError(f"{option} {path} is not writable; choose another path.") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UNetDecoderError(f"{option} {path} is not writable; choose another path.")
