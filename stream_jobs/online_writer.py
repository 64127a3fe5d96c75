"""The stream jobs' online writer: a thin front of finfeast's Feast online-store plugins.

Why a front and not its own encoder: the stream jobs hand over plain Python rows
(`(entity, event_ms, {feature: value})`), and stock `store.push` would rebuild views from the
registry and convert a DataFrame to protobuf row by row (about 10k rows/s). This module encodes
the rows with the plugins' one dtype map and key builder (`finfeast.feast_plugins.encoding`) and
writes them through the plugins' layouts (`finfeast.feast_plugins.online.RedisLayout` /
`SqliteLayout`), i.e. the code that `store.push`, `feast materialize` and `get_online_features`
run inside Feast. So the bytes are those of Feast's own stores, Redis keys get `key_ttl_seconds`
expiry, view names follow feature-view versioning, SQLite `event_ts` is always Feast's INTEGER
epoch seconds (plus `event_ns`), and a row is written only if its event time is strictly newer
than the stored one (atomically: a Lua script per entity on Redis, a guarded upsert on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finfeast.feast_plugins import encoding as enc
from stream_jobs.views import ViewSpec

encode_value = enc.encode_value  # public API kept for the stream helpers


def encode_timestamp_ms(ms: int) -> bytes:
    """Serialized protobuf `Timestamp` of an epoch-millisecond time (what Feast stores in `_ts:`)."""
    return enc.timestamp_bytes(ms * 1_000_000)


@dataclass
class WriteStats:
    """Rows offered, entity rows sent after collapsing a batch, rows written, stale rows skipped."""

    offered: int = 0
    sent: int = 0
    written: int = 0
    skipped_stale: int = 0

    def add(self, other: WriteStats) -> None:
        self.offered += other.offered
        self.sent += other.sent
        self.written += other.written
        self.skipped_stale += other.skipped_stale


Row = tuple[str, int, Mapping[str, Any]]  # (entity id, event_time_ms, feature values)


def latest_per_entity(rows: Iterable[Row]) -> dict[str, Row]:
    """The newest row of each entity in a batch (ties: the later row wins)."""
    latest: dict[str, Row] = {}
    for row in rows:
        prev = latest.get(row[0])
        if prev is None or row[1] >= prev[1]:
            latest[row[0]] = row
    return latest


class OnlineWriter(Protocol):
    def write(self, view: ViewSpec, rows: Sequence[Row]) -> WriteStats: ...

    def close(self) -> None: ...


def _identity(view: ViewSpec) -> str:
    return view.name


class _KeyCache:
    """Serialized entity keys of (join key, entity id), bounded."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], bytes] = {}

    def get(self, join_key: str, entity: str) -> bytes:
        k = (join_key, entity)
        cached = self.keys.get(k)
        if cached is None:
            if len(self.keys) > 200_000:
                self.keys.clear()
            cached = self.keys[k] = enc.entity_key_bytes([join_key], [entity])
        return cached


class _PluginWriter:
    """Shared part: collapse a batch, encode with the plugins' dtype map, hand to a layout."""

    def __init__(self, layout: Any, online_name: Callable[[ViewSpec], str] | None) -> None:
        self.layout = layout
        self.online_name = online_name or _identity
        self._keys = _KeyCache()
        self._encoders: dict[str, list[tuple[str, bytes | str, Callable[[Any], bytes]]]] = {}

    def _field(self, name: str, feature: str) -> bytes | str:
        raise NotImplementedError

    def _encoders_of(self, view: ViewSpec, name: str) -> list:
        cached = self._encoders.get(name)
        if cached is None:
            cached = self._encoders[name] = [
                (f, self._field(name, f), enc.DTYPES[dtype].encode) for f, dtype in view.features
            ]
        return cached

    def write(self, view: ViewSpec, rows: Sequence[Row]) -> WriteStats:
        latest = latest_per_entity(rows)
        if not latest:
            return WriteStats(offered=len(rows))
        name = self.online_name(view)
        encoders = self._encoders_of(view, name)
        entries = []
        for entity, ms, values in latest.values():
            fields = [(fkey, encode(values.get(f))) for f, fkey, encode in encoders]
            entries.append((self._keys.get(view.join_key, entity), ms * 1_000_000, fields))
        written = self.layout.write(name, entries)
        return WriteStats(len(rows), len(latest), written, len(rows) - written)

    def close(self) -> None:
        self.layout.close()


class RedisOnlineWriter(_PluginWriter):
    """Writes through `FinfeastRedisOnlineStore`'s layout (newer event time wins, key TTL)."""

    def __init__(
        self,
        client: Any,
        project: str,
        key_ttl_seconds: int | None = None,
        online_name: Callable[[ViewSpec], str] | None = None,
    ) -> None:
        from finfeast.feast_plugins.online import RedisLayout

        super().__init__(RedisLayout(client, project, key_ttl_seconds), online_name)
        self.client = client
        self.project = project

    def _field(self, name: str, feature: str) -> bytes:
        return enc.feature_field(name, feature)

    @classmethod
    def from_settings(cls, settings: Any) -> RedisOnlineWriter:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No hidden client retries: the job's loop owns retry/backoff (and counts it), and must
        # not commit offsets while Redis is down.
        client = redis.Redis(
            host=settings.redis_host,
            port=settings.redis_port,
            db=settings.redis_db,
            password=settings.redis_password or None,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        config = _repo_config(settings)
        ttl = getattr(getattr(config, "online_store", None), "key_ttl_seconds", None)
        return cls(client, settings.project, ttl, _online_names(settings, config))


class SqliteOnlineWriter(_PluginWriter):
    """Writes through `FinfeastSqliteOnlineStore`'s layout (Feast's INTEGER `event_ts`)."""

    def __init__(
        self, path: str, project: str, online_name: Callable[[ViewSpec], str] | None = None
    ) -> None:
        from finfeast.feast_plugins.online import SqliteLayout

        super().__init__(SqliteLayout(path, project), online_name)
        self.conn = self.layout.conn
        self.project = project

    def _field(self, name: str, feature: str) -> str:
        return feature

    @classmethod
    def from_settings(cls, settings: Any) -> SqliteOnlineWriter:
        config = _repo_config(settings)
        return cls(str(settings.online_path), settings.project, _online_names(settings, config))


def _repo_config(settings: Any) -> Any:
    """The profile's Feast RepoConfig (None when the YAML cannot be loaded here)."""
    try:
        from feast.repo_config import load_repo_config

        settings.apply_env()
        return load_repo_config(settings.repo_path, settings.feature_store_yaml)
    except Exception as exc:  # noqa: BLE001 - the writer works without it (no key TTL, no versioning)
        from loguru import logger

        logger.warning(
            f"online writer without the Feast repo config (no key TTL/versioning): {exc}"
        )
        return None


def _online_names(settings: Any, config: Any) -> Callable[[ViewSpec], str] | None:
    """Versioned online view names from the registry when online versioning is on."""
    if config is None or not config.registry.enable_online_feature_view_versioning:
        return None
    from feast import FeatureStore

    store = FeatureStore(
        repo_path=str(settings.repo_path), fs_yaml_file=settings.feature_store_yaml
    )
    names: dict[str, str] = {}

    def name(view: ViewSpec) -> str:
        if view.name not in names:
            fv = store.get_feature_view(view.name, allow_registry_cache=True)
            names[view.name] = enc.view_table_name(fv, True)
        return names[view.name]

    return name


def open_writer(settings: Any) -> OnlineWriter:
    """The fast writer of the settings' profile: Redis (prod) or SQLite (local)."""
    if settings.profile == "prod":
        return RedisOnlineWriter.from_settings(settings)
    return SqliteOnlineWriter.from_settings(settings)
