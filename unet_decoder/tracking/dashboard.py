"""Make asv's published dashboard work without internet access.

asv 0.6's index.html pulls jQuery, flot, bootstrap and friends from CDNs; on an offline
cluster or CI runner the page stays blank. This copies the same libraries (vendored from npm)
next to it and rewrites the tags to load them locally. Run it after every `asv publish`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..errors import UNetDecoderError

VENDOR = Path(__file__).with_name("www")
LOCAL_DIR = "vendor"

#: CDN file name (the URL's last part) -> vendored file.
CDN_TO_LOCAL = {
    "jquery-3.3.1.min.js": "jquery.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap.min.css": "bootstrap.min.css",
}

_REMOTE = re.compile(r'(src|href)="(https?://[^"]+)"')
_SRI = re.compile(r'\s+(integrity|crossorigin|referrerpolicy)="[^"]*"')


def make_offline(html_dir: str | Path) -> list[str]:
    """Rewrite html_dir/index.html to local copies; returns the URLs it replaced."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise UNetDecoderError(f"No {index}: run `asv publish` first (or pass the html_dir).")
    replaced: list[str] = []

    def local(match: re.Match) -> str:
        attribute, url = match.groups()
        name = CDN_TO_LOCAL.get(url.rsplit("/", 1)[-1])
        if name is None:
            return match.group(0)
        replaced.append(url)
        return f'{attribute}="{LOCAL_DIR}/{name}"'

    lines = []
    for line in index.read_text().splitlines(keepends=True):
        rewritten = _REMOTE.sub(local, line)
        lines.append(_SRI.sub("", rewritten) if rewritten != line else line)
    (html_dir / LOCAL_DIR).mkdir(exist_ok=True)
    for name in CDN_TO_LOCAL.values():
        shutil.copy2(VENDOR / name, html_dir / LOCAL_DIR / name)
    index.write_text("".join(lines))
    return replaced
