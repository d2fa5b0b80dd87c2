"""The spec's command: `cd benchmarks/unet_decoder && uv run benchmark.py [bench options]`.

A thin entry point to `unet-decoder bench` (same code, same options), kept outside any
package so that asv does not collect it.
"""

import sys

from unet_decoder.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
