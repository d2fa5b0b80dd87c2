"""Measurement in one process: subjects (what a row is judged on), rows, `run_bench`, the
report, the peers; and the machine's own noise (`neighbours`).

`unet-decoder bench`, `tune` and the asv suites measure with the same pieces, so a number
means the same thing wherever it is shown.
"""
