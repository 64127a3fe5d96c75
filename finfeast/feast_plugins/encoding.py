"""One key builder and one dtype map for finfeast's online stores (reader, writer, stream jobs).

Why one module: the Redis and SQLite plugins, `feast materialize`, `store.push` and the stream
jobs' fast writer must produce and read exactly the bytes of Feast's documented online-store
format (docs/specs/online_store_format.md in Feast), or rows written by one path would not be
found by another. Everything is built from Feast's public serializers
(`feast.infra.key_encoding_utils.serialize_entity_key`, `ValueProto`, protobuf `Timestamp`) or
from the documented layout itself:

- Redis: one hash per entity, key = serialized entity key (v3) + project name; feature field =
  the 4-byte little-endian unsigned murmur3-32 of `"<view>:<feature>"`; `_ts:<view>` = the
  serialized `Timestamp` of the row's event time.
- SQLite: table `<project>_<view>` (view name versioned when online versioning is on), one row
  per (entity key, feature): `value` = serialized `ValueProto`, `event_ts` = whole epoch seconds
  as an INTEGER (what Feast's own adapter writes), plus finfeast's `event_ns` column (epoch
  nanoseconds) so sub-second times and the newer-wins guard survive.

Values: `DTYPES` maps a catalog dtype ("float64", "int64", ...) to its Feast type and to the fast
protobuf encoder; NaN and None are written as an empty `ValueProto` (null), as Feast's own
`python_values_to_proto_values` does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mmh3

_PACK_DOUBLE = struct.Struct("<d").pack
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_PACK_FLOAT = struct.Struct("<f").pack
_PACK_U32 = struct.Struct("<I").pack
NULL = b""  # an empty ValueProto: Feast reads it back as None

# ValueProto wire tags (field number << 3 | wire type)
TAG_STRING = 0x12  # string_val = 2, length-delimited
TAG_INT32 = 0x18  # int32_val = 3, varint
TAG_INT64 = 0x20  # int64_val = 4, varint
TAG_DOUBLE = 0x29  # double_val = 5, fixed64
TAG_FLOAT = 0x35  # float_val = 6, fixed32
TAG_BOOL = 0x38  # bool_val = 7, varint


def varint(value: int) -> bytes:
    """Protobuf base-128 varint (negative ints as 64-bit two's complement, like int64 fields)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _enc_double(value: Any) -> bytes:
    if value is None:
        return NULL
    v = float(value)
    return NULL if v != v else b")" + _PACK_DOUBLE(v)


def _enc_float(value: Any) -> bytes:
    if value is None:
        return NULL
    v = float(value)
    return NULL if v != v else b"5" + _PACK_FLOAT(v)


def _enc_int64(value: Any) -> bytes:
    if value is None or _is_nan(value):
        return NULL
    return b" " + varint(int(value))


def _enc_int32(value: Any) -> bytes:
    if value is None or _is_nan(value):
        return NULL
    return b"\x18" + varint(int(value))


def _enc_bool(value: Any) -> bytes:
    if value is None or _is_nan(value):
        return NULL
    return b"8\x01" if value else b"8\x00"


def _enc_string(value: Any) -> bytes:
    if value is None or _is_nan(value):
        return NULL
    raw = str(value).encode()
    return b"\x12" + varint(len(raw)) + raw


@dataclass(frozen=True)
class Dtype:
    """A catalog dtype: its Feast type name, value type and fast ValueProto encoder."""

    name: str
    feast_type: str  # attribute of `feast.types`
    encode: Callable[[Any], bytes]

    def to_feast(self) -> Any:
        from feast import types

        return getattr(types, self.feast_type)


DTYPES: dict[str, Dtype] = {
    d.name: d
    for d in (
        Dtype("float64", "Float64", _enc_double),
        Dtype("float32", "Float32", _enc_float),
        Dtype("int64", "Int64", _enc_int64),
        Dtype("int32", "Int32", _enc_int32),
        Dtype("bool", "Bool", _enc_bool),
        Dtype("string", "String", _enc_string),
    )
}


def encode_value(dtype: str, value: Any) -> bytes:
    """Serialized `ValueProto` of one feature value of a catalog dtype (None / NaN -> null)."""
    try:
        return DTYPES[dtype].encode(value)
    except KeyError:
        raise ValueError(f"unsupported online dtype {dtype!r}") from None


def decode_value(raw: bytes | None) -> Any:
    """Python value of a serialized `ValueProto` (what `OnlineResponse.to_dict()` returns)."""
    if not raw:
        return None
    tag = raw[0]
    if tag == TAG_DOUBLE and len(raw) == 9:
        return _UNPACK_DOUBLE(raw, 1)[0]
    if tag == TAG_INT64:
        v, end = read_varint(raw, 1)
        if end == len(raw):
            return v - (1 << 64) if v >= 1 << 63 else v
    elif tag == TAG_BOOL and len(raw) == 2:
        return raw[1] != 0
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(raw))


_DOUBLES: dict[int, Any] = {}


def decode_column(raws: Sequence[bytes | None]) -> list[Any]:
    """`decode_value` of a column; an all-double column is unpacked in one C call."""
    n = len(raws)
    try:
        joined = b"".join(raws)  # type: ignore[arg-type]  # TypeError on a None
    except TypeError:
        joined = b""
    if n and len(joined) == 9 * n and joined[::9] == b")" * n:
        unpacker = _DOUBLES.get(n)
        if unpacker is None:
            unpacker = _DOUBLES[n] = struct.Struct("<" + "xd" * n).unpack
        return list(unpacker(joined))
    return [decode_value(r) for r in raws]


# ---- keys -----------------------------------------------------------------------------------
def entity_key_bytes(join_keys: list[str], values: list[Any], version: int = 3) -> bytes:
    """Feast's serialized entity key of native join-key values (str -> string, int -> int64)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    protos = []
    for value in values:
        if isinstance(value, str):
            protos.append(Value(string_val=value))
        elif isinstance(value, int) and not isinstance(value, bool):
            protos.append(Value(int64_val=value))
        else:
            raise TypeError(f"join key value {value!r} must be a str or an int")
    key = EntityKey(join_keys=list(join_keys), entity_values=protos)
    return serialize_entity_key(key, entity_key_serialization_version=version)


def proto_entity_key_bytes(entity_key: Any, version: int = 3) -> bytes:
    """Serialized entity key of an `EntityKeyProto` (Feast's materialize / push path)."""
    from feast.infra.key_encoding_utils import serialize_entity_key

    return serialize_entity_key(entity_key, entity_key_serialization_version=version)


def redis_key(entity_key: bytes, project: str) -> bytes:
    """Redis hash key of an entity: serialized entity key + project name."""
    return entity_key + project.encode()


def feature_field(view: str, feature: str) -> bytes:
    """Redis hash field of a feature: unsigned murmur3-32 of `view:feature`, 4 bytes LE."""
    return _PACK_U32(mmh3.hash(f"{view}:{feature}", signed=False))


def ts_field(view: str) -> bytes:
    """Redis hash field of a view's event time."""
    return f"_ts:{view}".encode()


def view_table_name(table: Any, versioning: bool) -> str:
    """The view's online name: `<view>_v<N>` when online feature-view versioning is on."""
    from feast.infra.online_stores.helpers import compute_versioned_name

    return compute_versioned_name(table, versioning)


def sqlite_table(project: str, view_name: str) -> str:
    return f"{project}_{view_name}"


# ---- times ----------------------------------------------------------------------------------
def to_epoch_ns(ts: datetime) -> int:
    """Epoch nanoseconds of a datetime; a naive datetime is UTC (Feast's rule)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    nanos = getattr(ts, "nanosecond", 0)  # pandas.Timestamp keeps nanoseconds
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + nanos


def timestamp_bytes(ns: int) -> bytes:
    """Serialized protobuf `Timestamp` of epoch nanoseconds (what Feast stores in `_ts:`)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out


def timestamp_ns(raw: bytes | None) -> int | None:
    """Epoch nanoseconds of a serialized `Timestamp` (None when absent)."""
    if raw is None:
        return None
    seconds = nanos = 0
    pos = 0
    n = len(raw)
    while pos < n:
        tag = raw[pos]
        value, pos = read_varint(raw, pos + 1)
        if tag == 0x08:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == 0x10:
            nanos = value
    return seconds * 1_000_000_000 + nanos


def sqlite_event_seconds(value: Any) -> int | None:
    """Whole epoch seconds of a stored SQLite `event_ts` in any format seen in the wild.

    Feast's adapter writes an INTEGER; finfeast's old fast writer wrote naive UTC TEXT
    (`2013-10-07 19:12:00`) when Feast's sqlite module was not imported in its process.
    """
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        parsed = datetime.fromisoformat(value)
        return to_epoch_ns(parsed) // 1_000_000_000
    if isinstance(value, datetime):
        return to_epoch_ns(value) // 1_000_000_000
    raise ValueError(f"unreadable SQLite event_ts {value!r}")
