"""Feature/label tables from real canonical tables, and training sets through Feast.

Both profiles: local (Parquet + DuckDB) and prod (PostgreSQL offline store, real server).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from featstore_inputs import SYMBOLS, built_settings

from finfeast.errors import FinfeastError
from finfeast.offline import open_tables
from transforms import catalog
from transforms.labels import LABELS_TABLE, available_at, label_columns
from transforms.training import build_training_set, label_entity_frame

SERVICE = "daily_v1"


@pytest.fixture(scope="module", params=["local", pytest.param("prod", marks=pytest.mark.prod)])
def built(request, settings_factory, data_dir):
    return built_settings(settings_factory, data_dir, request.param)


def _read(settings, table: str) -> pd.DataFrame:
    df = open_tables(settings).read(table)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    return df


def _service_features(settings) -> list[str]:
    from finfeast.store import get_store

    service = get_store(settings).get_feature_service(SERVICE)
    return [f.name for p in service.feature_view_projections for f in p.features]


def test_feature_table_has_one_row_per_bar_and_every_catalog_feature(built) -> None:
    feats = _read(built, "features_daily")
    bars = _read(built, "bars")
    assert len(feats) == len(bars)
    assert not feats.duplicated(["symbol", "event_timestamp"]).any()
    names = [f.name for f in catalog.all_features()]
    assert set(names) <= set(feats.columns)
    assert "created_timestamp" in feats.columns
    # labels live apart: no forward-looking column leaked into the feature table
    leaked = [c for c in feats.columns if c.startswith(("fwd_", "label_"))]
    assert leaked == []
    assert set(feats["symbol"]) == set(SYMBOLS) | {"^GSPC"}
    # context features came from the canonical macro/fx/listings tables
    assert feats["vix"].notna().mean() > 0.9
    assert feats["eurusd_ret_1"].notna().mean() > 0.9


def test_labels_table_is_separate_and_complete(built) -> None:
    labels = _read(built, LABELS_TABLE)
    assert len(labels) == len(_read(built, "bars"))
    assert set(label_columns()) <= set(labels.columns)


def test_training_set_joins_labels_with_features_known_at_the_anchor(built) -> None:
    names = _service_features(built)
    got = build_training_set(
        built, SERVICE, labels=["fwd_ret_5", "fwd_dir_5"], symbols=["XOM", "AAPL"]
    )
    entity = label_entity_frame(built, labels=["fwd_ret_5", "fwd_dir_5"], symbols=["XOM", "AAPL"])
    assert len(got) == len(entity) > 2000
    assert got["fwd_ret_5"].notna().all()
    # every entity time is a bar close: the as-of join must return that very bar's features
    feats = _read(built, "features_daily").set_index(["symbol", "event_timestamp"])
    expected = feats.loc[list(zip(got["symbol"], got["event_timestamp"], strict=True)), names]
    for name in names:
        np.testing.assert_allclose(
            got[name].astype(float), expected[name].astype(float), rtol=1e-12, equal_nan=True
        )
    assert (pd.to_datetime(got[available_at(5)], utc=True) > got["event_timestamp"]).all()


def test_as_of_keeps_only_labels_already_observable(built) -> None:
    cutoff = pd.Timestamp("2016-06-30 12:00", tz="UTC")
    got = build_training_set(built, SERVICE, labels=["fwd_ret_20"], as_of=cutoff, max_rows=500)
    assert len(got) == 500
    assert (pd.to_datetime(got[available_at(20)], utc=True) <= cutoff).all()
    # the most recent eligible rows were kept
    last_anchor = got["event_timestamp"].max()
    assert cutoff - last_anchor < pd.Timedelta(days=40)


def test_bad_requests_are_clear_errors(built) -> None:
    with pytest.raises(FinfeastError, match="feature service"):
        build_training_set(built, "no_such_service", symbols=["XOM"])
    with pytest.raises(FinfeastError, match="label"):
        label_entity_frame(built, labels=["fwd_ret_3"])
    with pytest.raises(FinfeastError, match="empty"):
        build_training_set(built, SERVICE, symbols=["NOPE"])


def _use(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings.env().items():
        monkeypatch.setenv(key, value)


def test_finfeast_features_command_writes_both_tables(
    settings_factory, data_dir, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from featstore_inputs import write_canonical_tables

    from finfeast.cli import main

    settings = settings_factory("local", "cli_features")
    _use(settings, monkeypatch)
    assert main(["features"]) == 2  # nothing ingested yet: a one-line error, no traceback
    assert "finfeast ingest" in capsys.readouterr().err
    write_canonical_tables(settings, data_dir, ("XOM", "JPM"))
    assert main(["features"]) == 0
    out = capsys.readouterr().out
    assert "features_daily" in out and "labels_daily" in out
    tables = open_tables(settings)
    assert len(tables.read("features_daily", columns=["symbol"])) == len(
        tables.read("bars", columns=["symbol"])
    )
    assert main(["select", "--folds", "1"]) == 2
    assert "--folds" in capsys.readouterr().err


def test_unusable_bars_are_quarantined_with_their_reason_and_the_rest_is_built(
    settings_factory, data_dir
) -> None:
    from featstore_inputs import write_canonical_tables

    from transforms.build import build_feature_tables

    settings = settings_factory("local", "bad_bars")
    write_canonical_tables(settings, data_dir, ("XOM", "JPM"))
    tables = open_tables(settings)
    bars = tables.read("bars")
    broken = bars.index[[100, 200, 300]]
    bars.loc[broken[0], "close"] = np.nan  # a real bar made unusable three ways
    bars.loc[broken[1], "low"] = -1.0
    bars.loc[broken[2], "volume"] = -5.0
    tables.replace("bars", bars)
    summary = build_feature_tables(settings)
    assert summary.bars_quarantined == 3
    assert "3 unusable, quarantined" in summary.to_rows()[0]["detail"]
    feats = tables.read("features_daily", columns=["symbol", "event_timestamp"])
    assert len(feats) == len(bars) - 3
    q = tables.read("quarantine")
    q = q[q["source"] == "features"]
    assert sorted(q["detail"]) == sorted(
        [
            "close not a positive finite number",
            "low not a positive finite number",
            "volume negative",
        ]
    )
    # re-running does not duplicate the quarantine entries
    build_feature_tables(settings)
    assert (tables.read("quarantine")["source"] == "features").sum() == 3
