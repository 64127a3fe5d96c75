"""Redis restarted with persistence keeps the materialized daily keys (prod profile, real data).

A private redis-server with an append-only file (`appendonly yes`, `appendfsync always`) in a temp
directory on a free port (never the shared one): ingest the packaged S&P 500 / NASDAQ indices,
build the catalog, `feast apply` + materialize, read the `daily_v1` service through Feast's
`get_online_features`; SIGKILL the server (no graceful save), start it again on the same directory
and read again: every value is back, and they are the offline tables' last rows.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prod, pytest.mark.slow]
SERVICE = "daily_v1"
SYMBOLS = ["^GSPC", "^IXIC"]


class PersistentRedis:
    """redis-server with AOF persistence in `workdir`; started and SIGKILLed by PID."""

    def __init__(self, workdir: Path, helpers) -> None:  # noqa: ANN001
        binary = shutil.which("redis-server")
        if not binary:
            helpers.unavailable("redis-server is not installed")
        self.binary, self.workdir, self.helpers = binary, workdir, helpers
        self.port = helpers.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        deadline = time.monotonic() + 20
        while True:  # up and done loading the append-only file
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("persistent redis-server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def persistent_redis(tmp_path: Path, helpers) -> Iterator[PersistentRedis]:
    server = PersistentRedis(tmp_path, helpers)
    server.start()
    yield server
    server.kill()


def _online(settings) -> dict:  # noqa: ANN001
    from finfeast.store import get_store

    store = get_store(settings, fresh=True)
    return store.get_online_features(
        features=store.get_feature_service(SERVICE), entity_rows=[{"symbol": s} for s in SYMBOLS]
    ).to_dict()


def _null(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def test_materialized_daily_keys_survive_a_redis_restart(
    settings_factory, persistent_redis
) -> None:
    import redis

    from finfeast.offline import open_tables
    from finfeast.store import apply_repo, materialize
    from ingestion import run_ingest
    from transforms.build import build_feature_tables

    settings = settings_factory("prod", "redis_aof", redis_port=persistent_redis.port)
    run_ingest(settings, sources=["arch_indices"], progress=False)
    build_feature_tables(settings)
    apply_repo(settings)
    materialize(settings)
    before = _online(settings)
    client = redis.Redis(port=persistent_redis.port)
    keys_before = client.dbsize()
    names = [k for k in before if k != "symbol"]
    filled = [n for n in names if not any(_null(v) for v in before[n])]
    assert keys_before >= len(SYMBOLS) and len(filled) >= 3

    persistent_redis.kill()  # no shutdown save: only the append-only file can bring them back
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    persistent_redis.start()
    assert redis.Redis(port=persistent_redis.port).dbsize() == keys_before
    after = _online(settings)
    assert after == before or all(
        (_null(a) and _null(b)) or a == b
        for n in before
        for a, b in zip(before[n], after[n], strict=True)
    )
    # and they are the offline data's last rows (an oracle outside Redis and the catalog): the
    # 20-day simple moving average of each index equals the mean of its last 20 ingested closes
    bars = open_tables(settings).read("bars").sort_values("event_timestamp")
    expected = [bars[bars["symbol"] == s]["close"].tail(20).mean() for s in SYMBOLS]
    assert after["sma_20"] == pytest.approx(expected, rel=1e-9)
