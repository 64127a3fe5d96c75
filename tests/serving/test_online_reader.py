"""The lean Redis reader returns exactly what Feast's get_online_features returns (real data).

Compared by feature name (Feast's own column order is not stable across processes): the SDK
dict (`to_dict`) and the HTTP JSON body (`convert_response_to_dict`), for a feature service, a
feature list spanning two views, full feature names, unknown entities and repeated entities.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from finfeast.serving.hot_cache import HotEntityCache
from finfeast.serving.online_reader import RedisOnlineReader, UnsupportedRequest
from bench.price_repo import SERVICE


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_dicts_equal(sdk: dict, lean: dict) -> None:
    assert set(sdk) == set(lean)
    for name in sdk:
        assert len(sdk[name]) == len(lean[name]), name
        assert all(_same(x, y) for x, y in zip(sdk[name], lean[name], strict=True)), name


def _by_name(http: dict) -> dict:
    return dict(zip(http["metadata"]["feature_names"], http["results"], strict=True))


@pytest.fixture(scope="module")
def reader(price_store):
    return RedisOnlineReader(price_store)


CASES = {
    "service": dict(features=SERVICE),
    "two-view list": dict(features=["px_ranges:range_5", "px_returns:ret_1", "px_returns:ret_20"]),
    "full names": dict(features=SERVICE, full_feature_names=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lean_reader_equals_feast_sdk_and_http(case: str, price_store, reader) -> None:
    from feast.feature_server_utils import convert_response_to_dict

    kw = dict(CASES[case])
    symbols = ["AAPL", "NOT_A_SYMBOL", "APTV", "AAPL", "IBM"]
    rows = [{"symbol": s} for s in symbols]
    features = kw.pop("features")
    sdk_features = (
        price_store.get_feature_service(features) if isinstance(features, str) else features
    )
    sdk = price_store.get_online_features(features=sdk_features, entity_rows=rows, **kw)
    lean = reader.get_online_features(features, rows, **kw)
    _assert_dicts_equal(sdk.to_dict(), lean.to_dict())
    assert _by_name(convert_response_to_dict(sdk.proto)) == _by_name(lean.to_http())


def test_online_values_are_the_last_offline_rows(price_repo, reader) -> None:
    """Independent check against the source table, not only against Feast."""
    source = pd.read_parquet(price_repo.path / "px_features.parquet")
    last = source.sort_values("event_timestamp").groupby("symbol").tail(1).set_index("symbol")
    got = reader.get_online_features(SERVICE, [{"symbol": s} for s in ["AAPL", "BHF"]]).to_dict()
    for i, symbol in enumerate(["AAPL", "BHF"]):
        for name in ("ret_1", "ret_25", "range_25"):
            want = last.loc[symbol, name]
            assert (pd.isna(want) and got[name][i] is None) or got[name][i] == pytest.approx(
                want, rel=1e-15
            ), (symbol, name)


def test_bad_requests_are_clear_errors(reader) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        reader.get_online_features(SERVICE, [{"symbol": 42}])
    with pytest.raises(ValueError, match="join key 'symbol'"):
        reader.get_online_features(SERVICE, [{"ticker": "AAPL"}])
    with pytest.raises(ValueError, match="unknown features"):
        reader.get_online_features(["px_returns:no_such_feature"], [{"symbol": "AAPL"}])
    with pytest.raises(UnsupportedRequest):
        reader.get_online_features(["px_returns"], [{"symbol": "AAPL"}])


def test_hot_cache_serves_within_bound_and_refreshes_after(price_store) -> None:
    """A value written to Redis is invisible until the cached entry is older than the bound."""
    cache = HotEntityCache(max_age_ms=300)
    reader = RedisOnlineReader(price_store, cache=cache)
    plan = reader.plan(features=["px_live:close"])
    before = reader.read(plan, ["IBM"]).values[0][0]
    assert cache.misses == 1 and cache.hits == 0
    ts = pd.Timestamp.now(tz="UTC")
    new_close = before + 1.25
    price_store.write_to_online_store(
        "px_live",
        pd.DataFrame(
            {
                "symbol": ["IBM"],
                "close": [new_close],
                "event_timestamp": [ts],
                "created_timestamp": [ts],
            }
        ),
    )
    try:
        assert reader.read(plan, ["IBM"]).values[0][0] == before  # cached, within 300 ms
        assert cache.hits == 1
        time.sleep(0.35)
        assert reader.read(plan, ["IBM"]).values[0][0] == pytest.approx(new_close)
        assert cache.misses == 2
        assert cache.hit_ratio == pytest.approx(1 / 3)
    finally:
        # Put the original value back (newer timestamp: Feast skips older writes).
        price_store.write_to_online_store(
            "px_live",
            pd.DataFrame(
                {
                    "symbol": ["IBM"],
                    "close": [before],
                    "event_timestamp": [ts + pd.Timedelta(seconds=1)],
                    "created_timestamp": [ts + pd.Timedelta(seconds=1)],
                }
            ),
        )


def test_hot_cache_bound_lru_and_validation() -> None:
    now = [100.0]
    cache = HotEntityCache(max_age_ms=50, max_entries=2)
    cache._clock = lambda: now[0]
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now most recent
    cache.put("c", 3)  # evicts b (least recently used)
    assert cache.get("b") is None and len(cache) == 2
    now[0] += 0.049
    assert cache.get("c") == 3
    now[0] += 0.002  # 51 ms after insertion: too old
    assert cache.get("c") is None
    assert (cache.hits, cache.misses) == (2, 2)
    with pytest.raises(ValueError, match="positive"):
        HotEntityCache(max_age_ms=0)
