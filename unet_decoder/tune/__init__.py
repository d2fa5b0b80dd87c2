"""`unet-decoder tune`: choose, by measuring, the fastest deployment that keeps its answers,
and write it as an artifact (`deploy`). It stands above `bench` (whose subjects and timing
it uses) and `deploy` (whose artifacts it builds and loads)."""
