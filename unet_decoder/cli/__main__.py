"""`python -m unet_decoder.cli`, as the `unet-decoder` script."""

import sys

from . import main

sys.exit(main())
