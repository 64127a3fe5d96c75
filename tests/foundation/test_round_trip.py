"""End-to-end Feast round trip on both profiles, against real data and real services.

ingest (packaged indices + LEAN daily equities) -> features -> apply -> materialize, then:
online values equal the last offline rows, and training sets equal an independent as-of join.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finfeast.offline import open_tables
from finfeast.store import apply_repo, get_store, materialize

SOURCES = ["arch_indices", "lean_daily"]
SERVICE = "daily_v1"
SYMBOLS = ["^GSPC", "AAPL", "IBM"]
TTL = pd.Timedelta(days=10)  # feature_repo/feature_views.py DAILY_TTL


@pytest.fixture(scope="module", params=["local", "prod"])
def populated(request: pytest.FixtureRequest, settings_factory):
    from ingestion import run_ingest
    from transforms.build import build_feature_tables

    settings = settings_factory(request.param, f"rt_{request.param}")
    summary = run_ingest(settings, sources=SOURCES, progress=False)
    build_feature_tables(settings)
    apply_repo(settings)
    materialize(settings)
    return settings, summary


def _service_features(settings) -> list[str]:
    service = get_store(settings).get_feature_service(SERVICE)
    return [f.name for proj in service.feature_view_projections for f in proj.features]


def test_ingest_loads_every_packaged_index_row(populated) -> None:
    import arch.data.nasdaq
    import arch.data.sp500

    settings, summary = populated
    by_name = {s.name: s for s in summary.sources}
    src = by_name["arch_indices"]
    expected = len(arch.data.sp500.load()) + len(arch.data.nasdaq.load())
    assert src.status == "ok"
    assert src.rows_read == expected
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    bars = open_tables(settings).read("bars", columns=["symbol", "source"])
    counts = bars["symbol"].value_counts()
    assert counts["^GSPC"] + counts["^IXIC"] == src.rows_loaded


def test_online_features_equal_last_offline_rows(populated) -> None:
    settings, _ = populated
    names = _service_features(settings)
    offline = open_tables(settings).read(
        "features_daily", columns=["symbol", "event_timestamp", *names]
    )
    last = offline.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    store = get_store(settings)
    online = (
        store.get_online_features(
            features=store.get_feature_service(SERVICE),
            entity_rows=[{"symbol": s} for s in SYMBOLS],
        )
        .to_df()
        .set_index("symbol")
    )
    for symbol in SYMBOLS:
        for name in names:
            np.testing.assert_allclose(
                online.loc[symbol, name],
                last.loc[symbol, name],
                rtol=1e-12,
                err_msg=f"{symbol} {name}",
            )


def _entity_times(offline: pd.DataFrame) -> pd.DataFrame:
    """Query times that hit bar closes exactly, fall just before/after them, between trading
    days (weekends, holidays), before history starts and after it ends (beyond the TTL)."""
    rows = []
    for symbol, grp in offline.groupby("symbol"):
        ts = grp["event_timestamp"].sort_values().reset_index(drop=True)
        picks = ts.iloc[np.linspace(30, len(ts) - 2, 12).astype(int)]
        for t in picks:
            for delta in ("0s", "-1s", "1s", "-6h", "2D", "3D 4h"):
                rows.append((symbol, t + pd.Timedelta(delta)))
        rows.append((symbol, ts.iloc[0] - pd.Timedelta("1D")))
        rows.append((symbol, ts.iloc[-1] + TTL + pd.Timedelta("1D")))
    return pd.DataFrame(rows, columns=["symbol", "event_timestamp"])


def test_historical_features_equal_independent_as_of_join(populated) -> None:
    settings, _ = populated
    names = _service_features(settings)
    offline = open_tables(settings).read(
        "features_daily", columns=["symbol", "event_timestamp", *names]
    )
    offline = offline[offline["symbol"].isin(SYMBOLS)]
    entity_df = _entity_times(offline)
    entity_df["event_timestamp"] = entity_df["event_timestamp"].astype("datetime64[ns, UTC]")
    store = get_store(settings)
    got = store.get_historical_features(
        entity_df, features=store.get_feature_service(SERVICE)
    ).to_df()
    got["event_timestamp"] = pd.to_datetime(got["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    got = got.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)

    expected = (
        pd.merge_asof(
            entity_df.sort_values("event_timestamp"),
            offline.sort_values("event_timestamp"),
            on="event_timestamp",
            by="symbol",
            direction="backward",
            allow_exact_matches=True,
            tolerance=TTL,
        )
        .sort_values(["symbol", "event_timestamp"])
        .reset_index(drop=True)
    )

    assert len(got) == len(entity_df)
    pd.testing.assert_series_equal(got["symbol"], expected["symbol"])
    pd.testing.assert_series_equal(got["event_timestamp"], expected["event_timestamp"])
    for name in names:
        np.testing.assert_allclose(
            got[name].astype(float), expected[name].astype(float), rtol=1e-12, err_msg=name
        )
    # The join really exercised both sides: some rows found values, the out-of-range ones did not.
    assert got[names[0]].notna().sum() > len(got) // 2
    assert got[names[-1]].isna().sum() >= 2 * len(SYMBOLS)
