"""The real-time engine: Kafka producers and stream jobs that feed Feast's online store.

Modules (one job each):
- `schemas`: topic names, the JSON message schemas (versioned) and their validation.
- `replay`: producers replaying real intraday bars / SPY ticks, and `run_short_replay`.
- `simulator`: deterministic simulated account trades and positions at real prices.
- `broker`: the embedded Kafka-protocol broker (Tansu) and topic creation.
- `consumer`: the generic at-least-once loop (poll, decode, DLQ, process, write, commit).
- `market_job` / `account_job`: the two stream jobs.
- `anomaly`: River anomaly scores and drift flags per symbol (a slab of per-symbol arrays).
- `hst_kernel`: River's HalfSpaceTrees as arrays and the compiled score-then-learn kernel.
- `account_features`: rolling per-account trade and PnL state.
- `online_writer`: the fast write path into Feast's Redis / SQLite online-store layout.
- `offline_log`: the deduplicated offline log of the pushed rows.
- `metrics`: Prometheus metrics of every job.
- `consistency`: online/offline parity check (`finfeast stream check`).
"""
