"""Bar-only feature families: one numba kernel per family, run by `transforms.engine`.

Each module defines `STATE` (a `primitives.Layout` of the per-symbol state) and
`step(state, o, h, low, c, v, session, out)`, which folds one bar into the family's state slice and
writes the family's features for that bar into the output row. The same `step` serves backfill
(looped over history in compiled code) and streaming (one call per bar), so batch and online
cannot diverge by construction; `tests/transforms/test_online_parity.py` checks the plumbing.
"""
