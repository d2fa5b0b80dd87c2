"""The tracking room: asv and CI only, with no torch: the pull-request gate, the nightly job,
the noise measurement, the confirming rounds they share, verdicts, stored results, named
selections, the offline dashboard, asv's uv environment plugin and its static files.

Imports nothing here: the CLI loads only the module a subcommand needs.
"""
