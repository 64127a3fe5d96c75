"""The fast online writer: every written row reads back through Feast, on Redis and SQLite.

Rows are the market processor's real output for real bars. Each row is written alone and read
back with `store.get_online_features` before the next, so every row's bytes are proved readable
by Feast; a stale row must not overwrite; on Redis the bytes equal those of stock `store.push`.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stream_jobs.consumer import Event
from stream_jobs.market_job import MarketProcessor
from stream_jobs.online_writer import open_writer
from stream_jobs.replay import bar_messages, load_intraday_bars
from stream_jobs.schemas import TOPIC_BARS, decode
from stream_jobs.views import market_view

ROWS = 120


@pytest.fixture(scope="module")
def market_rows(data_dir) -> list:
    bars = load_intraday_bars(
        data_dir, symbols=["IBM", "BAC"], start="2013-10-09", end="2013-10-10"
    )
    events = [
        Event(TOPIC_BARS, 0, i, decode(TOPIC_BARS, v), ms)
        for i, (_k, v, ms) in enumerate(bar_messages(bars))
    ]
    rows = MarketProcessor().process(events)[market_view().name].rows()
    assert len(rows) == len(bars)
    # entity ids of this module only, so other stream tests' rows never make these stale
    return [(f"W_{symbol}", ms, values) for symbol, ms, values in rows]


def _null(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _assert_reads_back(store, row) -> None:  # noqa: ANN001
    view = market_view()
    symbol, _ms, values = row
    got = store.get_online_features(
        features=[f"{view.name}:{n}" for n in view.feature_names], entity_rows=[{"symbol": symbol}]
    ).to_dict()
    for name in view.feature_names:
        want = values.get(name)
        have = got[name][0]
        assert (_null(want) and _null(have)) or (not _null(have) and float(have) == float(want)), (
            name,
            have,
            want,
        )


@pytest.mark.parametrize("profile", ["local", "prod"])
def test_every_row_reads_back_through_feast(profile: str, market_rows, request) -> None:
    from finfeast.store import get_store

    settings = request.getfixturevalue(f"stream_{profile}")
    store = get_store(settings)
    writer = open_writer(settings)
    view = market_view()
    # the last ROWS rows (warm features, not only nulls), both symbols interleaved
    for row in market_rows[-ROWS:]:
        stats = writer.write(view, [row])
        assert stats.written == 1
        _assert_reads_back(store, row)
    # a stale row (older event time) must not overwrite the newest value
    latest = market_rows[-1]
    older = next(r for r in reversed(market_rows[:-1]) if r[0] == latest[0])
    assert writer.write(view, [older]).written == 0
    _assert_reads_back(store, latest)
    writer.close()


def test_redis_bytes_equal_stock_store_push(stream_prod, market_rows) -> None:
    import redis
    from feast.data_source import PushMode
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from finfeast.store import get_store
    from stream_jobs.online_writer import RedisOnlineWriter

    store = get_store(stream_prod)
    view = market_view()
    _sym, ms, values = market_rows[-1]
    client = redis.Redis(host=stream_prod.redis_host, port=stream_prod.redis_port)

    def key(entity: str) -> bytes:
        ek = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=entity)])
        return serialize_entity_key(ek, 3) + stream_prod.project.encode()

    stamp = pd.Timestamp(ms, unit="ms", tz="UTC")
    row = {"symbol": "PUSHED", "event_timestamp": stamp, "created_timestamp": stamp}
    row.update({n: values.get(n) for n in view.feature_names})
    frame = pd.DataFrame([row])
    for name, dtype in view.features:
        frame[name] = frame[name].astype("float64" if dtype == "float64" else "int64")
    # Feast's own push conversion (provider: local), not finfeast's columnar provider: the
    # oracle for the fast writer's bytes is Feast's table-to-proto path
    from feast import FeatureStore

    stock_push = FeatureStore(
        repo_path=str(store.repo_path), config=store.config.model_copy(update={"provider": "local"})
    )
    assert type(stock_push.provider).__name__ == "PassthroughProvider"
    stock_push.push("stream_market_push", frame, to=PushMode.ONLINE)
    RedisOnlineWriter(client, stream_prod.project).write(view, [("FAST", ms, values)])
    pushed = client.hgetall(key("PUSHED"))
    fast = client.hgetall(key("FAST"))
    assert pushed and pushed == fast
