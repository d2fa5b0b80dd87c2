"""The package's version, in a module of its own so that any room can record it (an
artifact's `deployed.json`) without importing the package's face."""

__version__ = "0.1.0"
