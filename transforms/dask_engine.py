"""`finfeast features --engine dask`: the catalog partitioned by symbol on a Dask cluster.

Why partition by symbol: every bar-only feature and the per-symbol part of the context family
depend on one symbol's own history only, so symbols are independent tasks. The market-wide inputs
(index returns, sector means, macro/FX series) are built once on the client by
`transforms.context.prepare_context` and scattered to the workers. Partitions are contiguous runs
of the sorted symbol list, balanced by row count, and the results are concatenated back in symbol
order, so the output is the same frame, bit for bit, as the single-process path.

`address=None` starts a `LocalCluster` (processes, one thread each) for the call; pass a scheduler
address (`tcp://host:8786`, FINFEAST_DASK_ADDRESS) to use a real cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from transforms.adjustments import ActionBook
from transforms.context import MarketContext, context_features


def symbol_partitions(bars: pd.DataFrame, n_partitions: int) -> list[list[str]]:
    """Sorted symbols cut into at most `n_partitions` contiguous groups of similar row counts."""
    counts = bars["symbol"].value_counts().sort_index()
    if counts.empty:
        return []
    n = max(1, min(n_partitions, len(counts)))
    cum = counts.cumsum().to_numpy()
    bounds = np.searchsorted(cum, np.linspace(0, cum[-1], n + 1)[1:-1], side="left")
    groups = np.split(counts.index.to_numpy(), np.unique(bounds + 1))
    return [list(g) for g in groups if len(g)]


def _compute_partition(
    part: pd.DataFrame, ctx: MarketContext, actions: ActionBook | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from transforms import compute_features

    part = part.sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)
    bar_feats = compute_features(part, actions=actions)
    bar_feats = bar_feats.sort_values(["symbol", "event_timestamp"], kind="stable")
    return bar_feats.reset_index(drop=True), context_features(part, ctx)


@contextmanager
def dask_client(address: str | None = None, n_workers: int = 2) -> Iterator[object]:
    """A distributed Client: to `address`, or to a LocalCluster that lives for the block."""
    from distributed import Client, LocalCluster

    address = address or os.environ.get("FINFEAST_DASK_ADDRESS") or None
    if address:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def compute_partitioned(
    bars: pd.DataFrame,
    ctx: MarketContext,
    address: str | None = None,
    n_partitions: int | None = None,
    client: object | None = None,
    actions: ActionBook | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bar-only and context features of `bars`, computed per symbol partition on Dask.

    Returns (bar features, context features), each sorted by symbol then event_timestamp.
    """
    if client is None:
        with dask_client(address) as own:
            return compute_partitioned(
                bars, ctx, n_partitions=n_partitions, client=own, actions=actions
            )
    workers = len(client.scheduler_info().get("workers", {})) or 1  # type: ignore[attr-defined]
    groups = symbol_partitions(bars, n_partitions or 4 * workers)
    ctx_future = client.scatter(ctx, broadcast=True)  # type: ignore[attr-defined]
    by_symbol = bars.groupby("symbol", sort=True)
    parts = [pd.concat([by_symbol.get_group(s) for s in g]) for g in groups]
    # scattered, not embedded in the task graph: the inputs travel once, straight to a worker
    part_futures = client.scatter(parts)  # type: ignore[attr-defined]
    futures = [
        client.submit(_compute_partition, part, ctx_future, actions)  # type: ignore[attr-defined]
        for part in part_futures
    ]
    results = client.gather(futures)  # type: ignore[attr-defined]
    bar_feats = pd.concat([r[0] for r in results], ignore_index=True)
    ctx_feats = pd.concat([r[1] for r in results], ignore_index=True)
    return bar_feats, ctx_feats
