"""The tracking room: measurements, `unet-decoder bench`, reports, peers, the asv gate,
nightly history and the offline dashboard.

Deliberately imports nothing here: the CLI loads only the module a subcommand needs, so
`unet-decoder --help` or `asv-offline` never pays for importing torch.
"""
