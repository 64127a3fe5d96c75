"""Feast online stores with finfeast's fast read and write paths (Redis for prod, SQLite local).

Selected in `feature_store*.yaml`:

    online_store:
      type: finfeast.feast_plugins.online.FinfeastRedisOnlineStore   # or ...FinfeastSqliteOnlineStore
      connection_string: "127.0.0.1:6379,db=0"                       # same keys as type: redis

Why subclasses of Feast's stores: `store.get_online_features`, `store.push`, `feast materialize`
and stock `feast serve` all reach the online store through these methods, so overriding them
gives every Feast path the fast code, and everything not overridden (update, teardown, vector
search, cluster/sentinel Redis) stays Feast's.

What changes against stock Feast 0.67 (measured in bench/RESULTS.md, docs/serving.md):
- `get_online_features`: a request plan (views, hash fields, output names) is resolved once per
  registry refresh instead of per call, one Redis pipeline (or one SQLite query per view) reads
  every view, values are decoded straight from their protobuf bytes into Python, and the
  response's protobuf is built only if someone asks for it (`feast serve` does, `to_dict` does
  not). Requests the plan does not cover (on-demand views, `view@vN` refs, join-key maps,
  several join keys, version metadata) go to Feast's own implementation unchanged, which still
  reads through this store's `online_read`.
- Statuses: PRESENT, NOT_FOUND for an entity the view has no row for (stock Redis says PRESENT
  with nulls), OUTSIDE_MAX_AGE when the view has a TTL and now - event time > TTL (Feast's own
  rule in its precomputed path; the stock per-view path never sets it).
- Writes: newer event time wins, atomically (a Lua script per entity on Redis, a guarded upsert
  on SQLite), `key_ttl_seconds` expiry on Redis, versioned view names, and SQLite `event_ts`
  always an INTEGER epoch second (Feast's format) plus `event_ns` for sub-second precision,
  whatever process writes and whatever it imported.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from feast import FeatureService
from feast.errors import FeastError
from feast.infra.online_stores.redis import (
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    RedisType,
)
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.online_response import OnlineResponse

from finfeast.feast_plugins import encoding as enc
from finfeast.feast_plugins.frames import ColumnRows

PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE = 1, 3, 4
_DUMMY_ID = "__dummy_id"
_NS = 1_000_000_000


# ---- configs --------------------------------------------------------------------------------
class FinfeastRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis config (connection_string, key_ttl_seconds, ...) under finfeast's type."""

    type: Literal["finfeast.feast_plugins.online.FinfeastRedisOnlineStore"] = (  # type: ignore[assignment]
        "finfeast.feast_plugins.online.FinfeastRedisOnlineStore"
    )


class FinfeastSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast's SQLite config (path) under finfeast's type."""

    type: Literal["finfeast.feast_plugins.online.FinfeastSqliteOnlineStore"] = (  # type: ignore[assignment]
        "finfeast.feast_plugins.online.FinfeastSqliteOnlineStore"
    )


def parse_connection_string(connection_string: str) -> tuple[list[tuple[str, int]], dict]:
    """Nodes and redis-py keyword arguments of Feast's documented Redis connection string.

    Format (RedisOnlineStoreConfig docs): `host:port[,host:port...],key=value,...`, values
    decoded as JSON when they parse (`db=0` -> 0, `ssl=true` -> True), else kept as strings.
    """
    nodes: list[tuple[str, int]] = []
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in connection_string.split(","))):
        if "=" in part:
            key, raw = part.split("=", 1)
            try:
                kwargs[key] = json.loads(raw)
            except json.JSONDecodeError:
                kwargs[key] = raw
        else:
            host, _, port = part.rpartition(":")
            nodes.append((host or part, int(port) if host else 6379))
    if not nodes:
        raise ValueError(f"no host:port in Redis connection string {connection_string!r}")
    return nodes, kwargs


# ---- read plans -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewPlan:
    """One feature view's part of a request: its stored name, features and output names."""

    view: Any  # feast.FeatureView
    name: str  # online name (versioned when online versioning is on)
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    ttl_ns: int  # 0 = no max age
    fields: tuple[bytes, ...]  # Redis: feature fields then `_ts:<view>`


@dataclass(frozen=True)
class ReadPlan:
    join_key: str
    entity_is_int: bool
    views: tuple[ViewPlan, ...]

    @property
    def feature_names(self) -> list[str]:
        return [n for v in self.views for n in v.output_names]

    @property
    def redis_fields(self) -> list[bytes]:
        return [f for v in self.views for f in v.fields]

    @property
    def value_types(self) -> dict[str, Any]:
        """Feast ValueType per output name (what `OnlineResponse` uses to decode)."""
        cached = self.__dict__.get("_types")
        if cached is None:
            cached = {}
            for vp in self.views:
                dtypes = {f.name: f.dtype for f in vp.view.features}
                for feat, out in zip(vp.features, vp.output_names, strict=True):
                    cached[out] = dtypes[feat].to_value_type()
            object.__setattr__(self, "_types", cached)
        return cached


class _Unsupported(Exception):
    """The request needs a Feast feature the lean path does not cover: use Feast's path."""


class InvalidOnlineRequest(FeastError):
    """A malformed online request (bad feature reference, join key, entity values, ...).

    A `FeastError` with HTTP status 422: Feast's own feature server (`feast serve`) answers it
    with that status and `{"module", "class", "message"}` naming the problem, never a 500.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def http_status_code(self) -> int:
        return 422


def check_request(features: Any, entity_rows: Any) -> None:
    """Reject what no store could answer, with a message naming the problem."""
    if not isinstance(features, FeatureService):
        if not isinstance(features, (list, tuple)) or not features:
            raise InvalidOnlineRequest(
                "no features requested: give 'features' or a feature service"
            )
        for ref in features:
            if not isinstance(ref, str) or ":" not in ref:
                raise InvalidOnlineRequest(
                    f"feature reference {ref!r} must be '<feature_view>:<feature>' "
                    "(e.g. 'daily_oscillators:rsi_14')"
                )
    if isinstance(entity_rows, Mapping):
        if not entity_rows:
            raise InvalidOnlineRequest("'entities' is empty: give the join key and its values")
        lengths = {k: len(v) for k, v in entity_rows.items() if hasattr(v, "__len__")}
        if len(set(lengths.values())) > 1:
            raise InvalidOnlineRequest(f"entity columns differ in length: {lengths}")
    elif isinstance(entity_rows, list):
        if not entity_rows:
            raise InvalidOnlineRequest("no entity rows given")
    else:
        raise InvalidOnlineRequest("entity rows must be a list of dicts or a dict of lists")


def _check_entities(entity_rows: Any, plan: ReadPlan) -> None:
    """Join-key problems of a request the lean plan covers: a 422 naming the key."""
    if isinstance(entity_rows, Mapping):
        given = list(entity_rows)
        values = entity_rows.get(plan.join_key)
    else:
        given = sorted({k for r in entity_rows if isinstance(r, Mapping) for k in r})
        values = None
        if all(isinstance(r, Mapping) and plan.join_key in r for r in entity_rows):
            values = [r[plan.join_key] for r in entity_rows]
    if values is None:
        raise InvalidOnlineRequest(
            f"missing join key {plan.join_key!r} of the requested views (request gives {given})"
        )
    want, label = (int, "integers") if plan.entity_is_int else (str, "strings")
    for v in values if isinstance(values, (list, tuple)) else []:
        if type(v) is not want and not (want is int and hasattr(v, "__index__")):
            raise InvalidOnlineRequest(
                f"join key {plan.join_key!r} takes {label}; got {v!r} ({type(v).__name__})"
            )


def _feast_path(call: Callable[[], Any]) -> Any:
    """Feast's own implementation, its request errors turned into `InvalidOnlineRequest`."""
    from feast.errors import FeatureNameCollisionError

    try:
        return call()
    except (FeatureNameCollisionError, KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise InvalidOnlineRequest(str(message)) from exc


def _view_plan(view: Any, display: str, feats: list[str], full: bool, versioning: bool) -> ViewPlan:
    known = {f.name for f in view.features}
    unknown = [f for f in feats if f not in known]
    if unknown:
        raise InvalidOnlineRequest(f"feature view {view.name!r} has no feature {unknown[0]!r}")
    if len(set(feats)) != len(feats):
        raise _Unsupported("repeated feature: Feast's rules apply")
    name = enc.view_table_name(view, versioning)
    ttl = view.ttl.total_seconds() if view.ttl else 0
    fields = tuple(enc.feature_field(name, f) for f in feats) + (enc.ts_field(name),)
    outputs = tuple(f"{display}__{f}" if full else f for f in feats)
    return ViewPlan(view, name, tuple(feats), outputs, int(ttl * _NS), fields)


def resolve_plan(
    registry: Any,
    project: str,
    features: list[str] | FeatureService,
    full_feature_names: bool,
    versioning: bool,
) -> ReadPlan:
    """The lean read plan of a request, from the public registry API (raises `_Unsupported`)."""
    from feast.errors import FeastObjectNotFoundException
    from feast.types import Int64, String

    groups: list[tuple[str, str, list[str]]] = []
    if isinstance(features, FeatureService):
        for proj in features.feature_view_projections:
            if proj.join_key_map or getattr(proj, "version_tag", None) is not None:
                raise _Unsupported("join key maps / versioned projections")
            groups.append((proj.name, proj.name_to_use(), [f.name for f in proj.features]))
    else:
        order: dict[str, list[str]] = {}
        for ref in features:
            if not isinstance(ref, str) or ":" not in ref or "@" in ref:
                raise _Unsupported(f"feature reference {ref!r}")
            view_name, feat = ref.split(":", 1)
            order.setdefault(view_name, []).append(feat)
        groups = [(v, v, fs) for v, fs in order.items()]
    if not groups:
        raise _Unsupported("no features")
    if len({g[1] for g in groups}) != len(groups):
        raise _Unsupported("a view appears twice")
    join_key: str | None = None
    is_int = False
    views = []
    for view_name, display, feats in groups:
        try:
            view = registry.get_feature_view(view_name, project, allow_cache=True)
        except FeastObjectNotFoundException as exc:  # on-demand view, or Feast's own error
            raise _Unsupported(str(exc)) from exc
        cols = [c for c in view.entity_columns if c.name != _DUMMY_ID]
        if len(cols) != 1 or cols[0].dtype not in (String, Int64):
            raise _Unsupported("one string or int64 join key per view")
        if join_key not in (None, cols[0].name):
            raise _Unsupported("several join keys")
        join_key, is_int = cols[0].name, cols[0].dtype == Int64
        views.append(_view_plan(view, display, feats, full_feature_names, versioning))
    assert join_key is not None
    return ReadPlan(join_key, is_int, tuple(views))


class _PlanCache:
    """Plans per request shape, dropped when the registry refreshes or after `ttl_s`."""

    def __init__(self) -> None:
        self._plans: dict[tuple, tuple[float, Any, ReadPlan | None]] = {}

    def get(
        self,
        config: Any,
        registry: Any,
        project: str,
        features: list[str] | FeatureService,
        full: bool,
    ) -> ReadPlan | None:
        if isinstance(features, FeatureService):
            # by content, not identity: `feast serve` fetches a new object per request
            shape: tuple = (
                "fs",
                features.name,
                tuple(
                    (
                        p.name,
                        p.name_to_use(),
                        tuple(f.name for f in p.features),
                        bool(p.join_key_map),
                    )
                    for p in features.feature_view_projections
                ),
            )
        else:
            try:
                shape = tuple(features)
                hash(shape)
            except TypeError:
                return None
        key = (id(registry), project, shape, full)
        now = time.monotonic()
        stamp = getattr(registry, "cached_registry_proto_created", None)
        hit = self._plans.get(key)
        ttl = float(getattr(config.registry, "cache_ttl_seconds", 60) or 60)
        if hit is not None and now - hit[0] < min(ttl, 60.0) and hit[1] == stamp:
            return hit[2]
        versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        try:
            plan: ReadPlan | None = resolve_plan(registry, project, features, full, versioning)
        except _Unsupported:
            plan = None
        if len(self._plans) > 1000:
            self._plans.clear()
        stamp = getattr(registry, "cached_registry_proto_created", None)
        self._plans[key] = (now, stamp, plan)
        return plan


def _entity_column(entity_rows: Any, plan: ReadPlan) -> list[Any] | None:
    """The request's join-key values, or None when the request is not a plain one-key lookup."""
    if isinstance(entity_rows, list):
        if not entity_rows or any(not isinstance(r, Mapping) or len(r) != 1 for r in entity_rows):
            return None
        try:
            values = [r[plan.join_key] for r in entity_rows]
        except KeyError:
            return None
    elif isinstance(entity_rows, Mapping):
        if list(entity_rows) != [plan.join_key]:
            return None
        values = entity_rows[plan.join_key]
        if not isinstance(values, (list, tuple)):
            return None
        values = list(values)
    else:
        return None
    want = int if plan.entity_is_int else str
    for v in values:
        if type(v) is not want:
            return None
    return values


# ---- the response ---------------------------------------------------------------------------
def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, varint length, payload."""
    return tag + enc.varint(len(payload)) + payload


class _ValuePrefixes(dict):
    """`values` element prefix (field 1, length-delimited) per cell length, built once each."""

    def __missing__(self, length: int) -> bytes:
        prefix = self[length] = b"\n" + enc.varint(length)
        return prefix


_VALUE = _ValuePrefixes()


class ColumnarOnlineResponse(OnlineResponse):
    """An `OnlineResponse` kept as columns of raw `ValueProto` bytes.

    `to_dict()` decodes the bytes straight to Python; `.proto` (used by `feast serve`, `to_df`
    with timestamps, ...) is built on first access and is then identical to Feast's.
    """

    def __init__(
        self,
        join_key: str,
        entities: list[Any],
        names: list[str],
        raw: list[list[bytes | None]],
        statuses: list[list[int]],
        stamps: list[list[int | None]],
        feature_types: dict[str, Any] | None = None,
    ) -> None:
        self._join_key = join_key
        self._entities = entities
        self._names = names
        self._raw = raw
        self._statuses = statuses
        self._stamps = stamps  # epoch ns per feature per entity (None: no row)
        self._feature_types = feature_types or {}
        self._proto: Any = None

    @property
    def proto(self) -> Any:  # type: ignore[override]
        if self._proto is None:
            self._proto = self._build_proto()
        return self._proto

    @proto.setter
    def proto(self, value: Any) -> None:
        self._proto = value

    def _build_proto(self) -> Any:
        """Feast's `GetOnlineFeaturesResponse`, parsed from wire bytes assembled here.

        Why bytes: the cells already are serialized `ValueProto`s, so the message is their
        concatenation with length prefixes (protobuf wire format); one C-level parse replaces
        a Python object per cell. The result is the message Feast builds (same fields and
        values: tests/plugins compare it cell by cell with Feast's own stores).
        """
        from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

        n = len(self._entities)
        encode = enc.DTYPES["int64" if n and type(self._entities[0]) is int else "string"].encode
        names = b"".join(_field(b"\n", name.encode()) for name in [self._join_key, *self._names])
        parts = [_field(b"\n", _field(b"\n", names))]  # metadata { feature_names { val } }
        zero_stamps = b"\x1a\x00" * n
        entity_vector = (
            b"".join([_field(b"\n", encode(e)) for e in self._entities])
            + _field(b"\x12", bytes([PRESENT]) * n)
            + zero_stamps
        )
        parts.append(_field(b"\x12", entity_vector))
        done: dict[int, bytes] = {}  # statuses / stamps columns are shared by a view's features
        for raw_col, status_col, stamp_col in zip(
            self._raw, self._statuses, self._stamps, strict=True
        ):
            statuses = done.get(id(status_col))
            if statuses is None:
                statuses = done[id(status_col)] = _field(b"\x12", bytes(status_col))
            stamps = done.get(id(stamp_col))
            if stamps is None:
                stamps = done[id(stamp_col)] = b"".join(
                    [
                        b"\x1a\x00" if ns is None else _field(b"\x1a", enc.timestamp_bytes(ns))
                        for ns in stamp_col
                    ]
                )
            values = b"".join([_VALUE[len(r)] + r if r else b"\n\x00" for r in raw_col])
            parts.append(_field(b"\x12", values + statuses + stamps))
        return GetOnlineFeaturesResponse.FromString(b"".join(parts))

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, Any]:
        if include_event_timestamps:
            return super().to_dict(include_event_timestamps=True)
        out: dict[str, Any] = {self._join_key: list(self._entities)}
        for name, col in zip(self._names, self._raw, strict=True):
            out[name] = enc.decode_column(col)
        return out


ViewColumns = tuple[Sequence[int | None], list[Sequence[bytes | None]]]


def _assemble(
    plan: ReadPlan, entities: list[Any], unique: list[Any], per_view: list[ViewColumns]
) -> ColumnarOnlineResponse:
    """The response from per-view columns over the unique entities (first-seen order).

    `per_view[k]` = (event ns per unique entity, one column of raw values per feature).
    Column-oriented so the common case (no repeated entity) copies no cell in Python.
    """
    now_ns = time.time_ns()
    order = None
    if len(unique) != len(entities):
        where = {e: i for i, e in enumerate(unique)}
        order = [where[e] for e in entities]
    raw_cols: list[Sequence[bytes | None]] = []
    status_cols: list[list[int]] = []
    stamp_cols: list[Sequence[int | None]] = []
    for vp, (stamps, cols) in zip(plan.views, per_view, strict=True):
        ttl = vp.ttl_ns
        statuses = [
            NOT_FOUND if ns is None else OUTSIDE_MAX_AGE if ttl and now_ns - ns > ttl else PRESENT
            for ns in stamps
        ]
        if order is not None:
            statuses = [statuses[i] for i in order]
            stamps = [stamps[i] for i in order]
            cols = [[c[i] for i in order] for c in cols]
        raw_cols.extend(cols)
        status_cols.extend([statuses] * len(cols))
        stamp_cols.extend([stamps] * len(cols))
    return ColumnarOnlineResponse(
        plan.join_key,
        entities,
        plan.feature_names,
        raw_cols,
        status_cols,
        stamp_cols,  # type: ignore[arg-type]
        plan.value_types,
    )


class _KeyCache:
    """Serialized entity keys of one-join-key lookups, bounded (hot entities repeat)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.keys: dict[tuple[str, Any], bytes] = {}

    def get(self, join_key: str, values: list[Any]) -> list[bytes]:
        keys = self.keys
        out = []
        for v in values:
            k = (join_key, v)
            b = keys.get(k)
            if b is None:
                if len(keys) >= self.limit:
                    keys.clear()
                b = keys[k] = enc.entity_key_bytes([join_key], [v])
            out.append(b)
        return out


def _unique(entities: list[Any]) -> list[Any]:
    return list(dict.fromkeys(entities))


# ---- Redis ----------------------------------------------------------------------------------
# KEYS[1] = entity hash; ARGV = ts field, seconds, nanos, ts bytes, key ttl (0 = none),
# then feature field/value pairs. Writes only when strictly newer than the stored event time
# (Feast's own rule: an equal instant is skipped), atomically per entity.
_REDIS_CAS = """
local function varint(s, pos)
  local result, mult = 0, 1
  while true do
    local b = string.byte(s, pos)
    if not b then return result, pos end
    result = result + (b % 128) * mult
    pos = pos + 1
    if b < 128 then return result, pos end
    mult = mult * 128
  end
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local secs, nanos, pos = 0, 0, 1
  while pos <= #old do
    local tag = string.byte(old, pos)
    local v
    v, pos = varint(old, pos + 1)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  local ns, nn = tonumber(ARGV[2]), tonumber(ARGV[3])
  if ns < secs or (ns == secs and nn <= nanos) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], unpack(ARGV, 6))
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""

Encoded = tuple[bytes, int, list[tuple[Any, bytes]]]  # (entity key bytes, event ns, fields)


def _newest_first_wins(entries: Sequence[Encoded]) -> list[Encoded]:
    """Newest row per entity key; among equal event times the first one (Feast's rule)."""
    best: dict[bytes, Encoded] = {}
    for entry in entries:
        prev = best.get(entry[0])
        if prev is None or entry[1] > prev[1]:
            best[entry[0]] = entry
    return list(best.values())


class RedisLayout:
    """Feast's Redis layout on one client: the fast writer and reader of every finfeast path."""

    def __init__(self, client: Any, project: str, key_ttl_seconds: int | None = None) -> None:
        self.client = client
        self.project = project
        self.key_ttl = int(key_ttl_seconds or 0)
        self._suffix = project.encode()
        self._script = client.register_script(_REDIS_CAS)
        self._keys = _KeyCache()

    @classmethod
    def connect(cls, online: RedisOnlineStoreConfig, project: str, **overrides: Any) -> RedisLayout:
        import redis

        nodes, kwargs = parse_connection_string(online.connection_string)
        kwargs.update(overrides)
        client = redis.Redis(host=nodes[0][0], port=nodes[0][1], **kwargs)
        return cls(client, project, online.key_ttl_seconds)

    def write(self, view_name: str, entries: Sequence[Encoded]) -> int:
        """Write encoded rows of one view (newer event time wins); returns rows written."""
        entries = _newest_first_wins(entries)
        if not entries:
            return 0
        ts_field = enc.ts_field(view_name)
        suffix = self._suffix
        calls = []
        for ek, ns, fields in entries:
            secs, nanos = divmod(ns, _NS)
            args: list[Any] = [ts_field, secs, nanos, enc.timestamp_bytes(ns), self.key_ttl]
            for f, v in fields:
                args.append(f)
                args.append(v)
            calls.append((ek + suffix, args))
        try:
            results = self._run(calls)
        except Exception as exc:  # NoScriptError: the server restarted and lost its scripts
            if type(exc).__name__ != "NoScriptError":
                raise
            self.client.script_load(_REDIS_CAS)
            results = self._run(calls)
        return sum(1 for r in results if r == 1)

    def _run(self, calls: list[tuple[bytes, list[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        sha = self._script.sha
        for key, args in calls:
            pipe.evalsha(sha, 1, key, *args)
        return pipe.execute()

    def hmget(self, keys: list[bytes], fields: list[bytes]) -> list[list[bytes | None]]:
        if len(keys) == 1:
            return [self.client.hmget(keys[0] + self._suffix, fields)]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key + self._suffix, fields)
        return pipe.execute()

    def read_plan(self, plan: ReadPlan, entities: list[Any]) -> ColumnarOnlineResponse:
        unique = _unique(entities)
        replies = self.hmget(self._keys.get(plan.join_key, unique), plan.redis_fields)
        columns = list(zip(*replies, strict=True))  # one tuple per hash field
        per_view: list[ViewColumns] = []
        pos = 0
        ts_ns = enc.timestamp_ns
        for vp in plan.views:
            n = len(vp.features)
            stamps = [ts_ns(raw) for raw in columns[pos + n]]
            cols: list[Sequence[bytes | None]] = columns[pos : pos + n]
            if None in stamps:  # no row for this view: nothing of it counts as read
                missing = {i for i, ns in enumerate(stamps) if ns is None}
                cols = [[None if i in missing else r for i, r in enumerate(c)] for c in cols]
            per_view.append((stamps, cols))
            pos += n + 1
        return _assemble(plan, entities, unique, per_view)

    def close(self) -> None:
        self.client.close()


def _encode_proto_rows(
    data: Sequence[tuple[Any, Mapping[str, Any], datetime, datetime | None]],
    field_of: Callable[[str], Any],
    version: int,
) -> list[Encoded]:
    """Feast's (EntityKeyProto, {name: ValueProto}, event time, created) rows -> encoded rows."""
    out: list[Encoded] = []
    field_keys: dict[str, Any] = {}
    stamps: dict[datetime, int] = {}  # rows of a push / materialize batch share few timestamps
    for entity_key, values, event_ts, _created in data:
        ek = enc.proto_entity_key_bytes(entity_key, version)
        fields = []
        for name, val in values.items():
            fk = field_keys.get(name)
            if fk is None:
                fk = field_keys[name] = field_of(name)
            fields.append((fk, val.SerializeToString()))
        ns = stamps.get(event_ts)
        if ns is None:
            ns = stamps[event_ts] = enc.to_epoch_ns(event_ts)
        out.append((ek, ns, fields))
    return out


class _ColumnarWrites:
    """`write_columns`: rows handed over as columns by `FinfeastProvider.ingest_df`.

    The same layout write as `online_write_batch` (newer event time wins, key TTL, versioned
    names), minus Feast's per-cell protobuf objects. Returns False when this store cannot take
    them (Redis cluster/sentinel, another entity-key serialization): the provider then runs
    Feast's own `ingest_df`, which calls `online_write_batch`.
    """

    def _columnar_ok(self, config: Any) -> bool:
        return config.entity_key_serialization_version == 3

    def _field_key(self, name: str, feature: str) -> Any:
        raise NotImplementedError

    def layout(self, config: Any) -> Any:
        raise NotImplementedError

    def write_columns(self, config: Any, table: Any, rows: ColumnRows) -> bool:
        """Write `rows` of feature view `table`; False = not taken (use Feast's path)."""
        if not self._columnar_ok(config) or not rows.features:
            return False
        name = enc.view_table_name(table, config.registry.enable_online_feature_view_versioning)
        layout = self.layout(config)
        keys = layout._keys.get(rows.join_key, rows.entities)
        fields = [self._field_key(name, f) for f in rows.features]
        entries: list[Encoded] = [
            (key, ns, list(zip(fields, cells, strict=True)))
            for key, ns, cells in zip(
                keys, rows.event_ns, zip(*rows.values, strict=True), strict=True
            )
        ]
        self._write_entries(layout, name, entries, rows.created_ns)
        return True

    def _write_entries(
        self, layout: Any, name: str, entries: list[Encoded], created_ns: int | None
    ) -> None:
        layout.write(name, entries)


class _LeanReads:
    """`get_online_features` of both plugins: the lean plan when it covers the request, else
    Feast's own implementation (which reads through the plugin's `online_read`)."""

    _plans: _PlanCache

    def _lean_ok(self, config: Any) -> bool:
        return True

    def layout(self, config: Any) -> Any:
        raise NotImplementedError

    def get_online_features(
        self,
        config: Any,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        check_request(features, entity_rows)
        plan = None
        if self._lean_ok(config) and not include_feature_view_version_metadata:
            plan = self._plans.get(config, registry, project, features, full_feature_names)
        if plan is not None:
            _check_entities(entity_rows, plan)
            entities = _entity_column(entity_rows, plan)
            if entities is not None:
                return self.layout(config).read_plan(plan, entities)
        parent = super()
        return _feast_path(
            lambda: parent.get_online_features(  # type: ignore[misc]
                config,
                features,
                entity_rows,
                registry,
                project,
                full_feature_names,
                include_feature_view_version_metadata,
            )
        )


class FinfeastRedisOnlineStore(_ColumnarWrites, _LeanReads, RedisOnlineStore):
    """Feast's Redis online store with finfeast's lean reads and atomic newer-wins writes."""

    def __init__(self) -> None:
        super().__init__()
        self._layout: RedisLayout | None = None
        self._plans = _PlanCache()

    def _lean_ok(self, config: Any) -> bool:
        return self._fast(config)

    def _columnar_ok(self, config: Any) -> bool:
        return self._fast(config) and config.entity_key_serialization_version == 3

    def _field_key(self, name: str, feature: str) -> bytes:
        return enc.feature_field(name, feature)

    def _fast(self, config: Any) -> bool:
        online = config.online_store
        return online.redis_type == RedisType.redis and config.entity_key_serialization_version >= 3

    def layout(self, config: Any) -> RedisLayout:
        if self._layout is None:
            self._layout = RedisLayout.connect(config.online_store, config.project)
        return self._layout

    def online_write_batch(self, config, table, data, progress) -> None:  # noqa: ANN001
        if not self._fast(config):
            return super().online_write_batch(config, table, data, progress)
        name = enc.view_table_name(table, config.registry.enable_online_feature_view_versioning)
        entries = _encode_proto_rows(
            data, lambda f: enc.feature_field(name, f), config.entity_key_serialization_version
        )
        self.layout(config).write(name, entries)
        if progress:
            progress(len(data))

    async def online_write_batch_async(self, config, table, data, progress) -> None:  # noqa: ANN001
        self.online_write_batch(config, table, data, progress)

    def online_read(self, config, table, entity_keys, requested_features=None):  # noqa: ANN001, ANN201
        if not self._fast(config):
            return super().online_read(config, table, entity_keys, requested_features)
        from feast.protos.feast.types.Value_pb2 import Value

        name = enc.view_table_name(table, config.registry.enable_online_feature_view_versioning)
        feats = list(requested_features or [f.name for f in table.features])
        fields = [enc.feature_field(name, f) for f in feats] + [enc.ts_field(name)]
        version = config.entity_key_serialization_version
        keys = [enc.proto_entity_key_bytes(k, version) for k in entity_keys]
        out = []
        for reply in self.layout(config).hmget(keys, fields) if keys else []:
            ns = enc.timestamp_ns(reply[-1])
            if ns is None:
                out.append((None, None))
                continue
            values = {
                f: Value.FromString(r) if r else Value()
                for f, r in zip(feats, reply[:-1], strict=True)
            }
            out.append((_datetime(ns), values))
        return out

    async def online_read_async(self, config, table, entity_keys, requested_features=None):  # noqa: ANN001, ANN201
        return self.online_read(config, table, entity_keys, requested_features)

    async def get_online_features_async(
        self,
        config: Any,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        # One pipelined round trip on loopback (~0.1-0.3 ms): answering inline is cheaper than
        # a thread hop, and Feast's own path is still used for everything the plan skips.
        return self.get_online_features(
            config,
            features,
            entity_rows,
            registry,
            project,
            full_feature_names,
            include_feature_view_version_metadata,
        )


def _datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / _NS, tz=UTC)


# ---- SQLite ---------------------------------------------------------------------------------
_STORED_NS = (
    "COALESCE({t}.event_ns, CASE typeof({t}.event_ts) "
    "WHEN 'integer' THEN {t}.event_ts * 1000000000 "
    "WHEN 'real' THEN CAST({t}.event_ts AS INTEGER) * 1000000000 "
    "WHEN 'text' THEN CAST(strftime('%s', {t}.event_ts) AS INTEGER) * 1000000000 "
    "ELSE -1 END)"
)


def _value_text(blob: bytes) -> str | None:
    """Feast's `value_text` column: the value as text (None for null)."""
    value = enc.decode_value(blob)
    return None if value is None else str(value)


class SqliteLayout:
    """Feast's SQLite layout on one connection: the fast writer and reader of every finfeast path."""

    def __init__(self, path: str | Path, project: str) -> None:
        # No detect_types: event_ts comes back as stored (INTEGER seconds, or a legacy TEXT).
        self.conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.project = project
        self._keys = _KeyCache()
        self._ready: set[str] = set()
        self._sql: dict[str, str] = {}

    @classmethod
    def connect(cls, config: Any) -> SqliteLayout:
        path = Path(config.online_store.path)
        if not path.is_absolute() and config.repo_path:
            path = Path(config.repo_path) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, config.project)

    def table(self, view_name: str) -> str:
        return enc.sqlite_table(self.project, view_name)

    def ensure(self, view_name: str) -> str:
        """Create the view's table in Feast's schema (if missing) plus finfeast's `event_ns`."""
        table = self.table(view_name)
        if table in self._ready:
            return table
        q = _quote(table)
        with self.conn:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {q} (entity_key BLOB, feature_name TEXT, value BLOB, "
                "value_text TEXT, vector_value BLOB, event_ts timestamp, created_ts timestamp, "
                "PRIMARY KEY(entity_key, feature_name))"
            )
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_quote(table + '_ek')} ON {q} (entity_key)"
            )
            cols = {row[1] for row in self.conn.execute(f"PRAGMA table_info({q})")}
            if "event_ns" not in cols:
                self.conn.execute(f"ALTER TABLE {q} ADD COLUMN event_ns INTEGER")
            if "value_text" not in cols:
                self.conn.execute(f"ALTER TABLE {q} ADD COLUMN value_text TEXT")
        self._ready.add(table)
        return table

    def _upsert(self, table: str) -> str:
        sql = self._sql.get(table)
        if sql is None:
            q = _quote(table)
            sql = self._sql[table] = (
                f"INSERT INTO {q} (entity_key, feature_name, value, value_text, event_ts, "
                "created_ts, event_ns) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
                "value_text = excluded.value_text, event_ts = excluded.event_ts, "
                "created_ts = excluded.created_ts, event_ns = excluded.event_ns "
                f"WHERE excluded.event_ns > {_STORED_NS.format(t=q)}"
            )
        return sql

    def write(
        self, view_name: str, entries: Sequence[Encoded], created_ns: int | None = None
    ) -> int:
        """Write encoded rows (fields keyed by feature name); newer event time wins."""
        entries = _newest_first_wins(entries)
        if not entries:
            return 0
        table = self.ensure(view_name)
        created = None if created_ns is None else created_ns // _NS
        params = []
        for ek, ns, fields in entries:
            secs = ns // _NS
            for fname, blob in fields:
                params.append((ek, fname, blob, _value_text(blob), secs, created, ns))
        per_entity = max(len(entries[0][2]), 1)
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(self._upsert(table), params)
            changed = self.conn.total_changes - before
        return changed // per_entity

    def read(
        self, view_name: str, keys: list[bytes], features: Sequence[str]
    ) -> list[tuple[int | None, list[bytes | None]]]:
        """(event ns, raw value per feature) per key; (None, nulls) for keys without a row."""
        table = self.ensure(view_name)
        n = len(features)
        if not keys:
            return []
        pos = {f: i for i, f in enumerate(features)}
        found: dict[bytes, tuple[int | None, list[bytes | None]]] = {}
        q = _quote(table)
        sql = (
            f"SELECT entity_key, feature_name, value, event_ts, event_ns FROM {q} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))})"
        )
        for ek, fname, value, event_ts, event_ns in self.conn.execute(sql, keys):
            j = pos.get(fname)
            if j is None:
                continue
            row = found.get(ek)
            if row is None:
                row = found[ek] = (None, [None] * n)
            ns = event_ns if event_ns is not None else _seconds_ns(event_ts)
            if row[0] is None or (ns is not None and ns > row[0]):
                row = found[ek] = (ns, row[1])
            row[1][j] = value
        empty = (None, [None] * n)
        return [found.get(k, empty) for k in keys]

    def read_plan(self, plan: ReadPlan, entities: list[Any]) -> ColumnarOnlineResponse:
        unique = _unique(entities)
        keys = self._keys.get(plan.join_key, unique)
        per_view: list[ViewColumns] = []
        for vp in plan.views:
            rows = self.read(vp.name, keys, vp.features)
            stamps = [ns for ns, _ in rows]
            cols = [list(c) for c in zip(*(vals for _, vals in rows), strict=True)]
            per_view.append((stamps, cols or [[] for _ in vp.features]))
        return _assemble(plan, entities, unique, per_view)

    def close(self) -> None:
        self.conn.close()


def _seconds_ns(event_ts: Any) -> int | None:
    secs = enc.sqlite_event_seconds(event_ts)
    return None if secs is None else secs * _NS


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class FinfeastSqliteOnlineStore(_ColumnarWrites, _LeanReads, SqliteOnlineStore):
    """Feast's SQLite online store with finfeast's lean reads and format-stable, guarded writes."""

    def __init__(self) -> None:
        super().__init__()
        self._layout: SqliteLayout | None = None
        self._plans = _PlanCache()

    def layout(self, config: Any) -> SqliteLayout:
        if self._layout is None:
            self._layout = SqliteLayout.connect(config)
        return self._layout

    def _field_key(self, name: str, feature: str) -> str:
        return feature

    def _write_entries(
        self, layout: Any, name: str, entries: list[Encoded], created_ns: int | None
    ) -> None:
        layout.write(name, entries, created_ns)

    def update(
        self,
        config,
        tables_to_delete,
        tables_to_keep,
        entities_to_delete,
        entities_to_keep,
        partial,
    ):  # noqa: ANN001, ANN201, E501
        super().update(
            config, tables_to_delete, tables_to_keep, entities_to_delete, entities_to_keep, partial
        )
        versioning = config.registry.enable_online_feature_view_versioning
        layout = self.layout(config)
        layout._ready.clear()
        for table in tables_to_keep:
            layout.ensure(enc.view_table_name(table, versioning))

    def online_write_batch(self, config, table, data, progress) -> None:  # noqa: ANN001
        name = enc.view_table_name(table, config.registry.enable_online_feature_view_versioning)
        entries = _encode_proto_rows(data, lambda f: f, config.entity_key_serialization_version)
        created = [c for *_x, c in data if c is not None]
        created_ns = enc.to_epoch_ns(max(created)) if created else None
        self.layout(config).write(name, entries, created_ns)
        if progress:
            progress(len(data))

    def online_read(self, config, table, entity_keys, requested_features=None):  # noqa: ANN001, ANN201
        from feast.protos.feast.types.Value_pb2 import Value

        name = enc.view_table_name(table, config.registry.enable_online_feature_view_versioning)
        feats = list(requested_features or [f.name for f in table.features])
        version = config.entity_key_serialization_version
        keys = [enc.proto_entity_key_bytes(k, version) for k in entity_keys]
        out = []
        for ns, raws in self.layout(config).read(name, keys, feats):
            if ns is None:
                out.append((None, None))
                continue
            values = {
                f: Value.FromString(r) for f, r in zip(feats, raws, strict=True) if r is not None
            }
            out.append((_datetime(ns), values))
        return out
