"""The fast writer's hand-rolled protobuf bytes equal what Feast's protobuf classes produce."""

from __future__ import annotations

import math

import pytest

from stream_jobs.online_writer import encode_timestamp_ms, encode_value, latest_per_entity


@pytest.mark.parametrize("value", [0.0, 1.5, -2.25, 168.17, 1e-12, -1e300, 123456789.987654321])
def test_double_matches_value_proto(value: float) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    assert encode_value("float64", value) == Value(double_val=value).SerializeToString()


@pytest.mark.parametrize("value", [0, 1, 42, -7, 2**40])
def test_int64_matches_value_proto(value: int) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    assert encode_value("int64", value) == Value(int64_val=value).SerializeToString()


def test_null_and_nan_encode_as_empty_value() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    empty = Value().SerializeToString()
    assert encode_value("float64", None) == empty
    assert encode_value("float64", math.nan) == empty
    assert Value.FromString(encode_value("float64", None)).WhichOneof("val") is None


@pytest.mark.parametrize("ms", [1, 999, 1000, 1381152600000, 1381152600123, 1764086400500])
def test_timestamp_matches_protobuf(ms: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)
    assert encode_timestamp_ms(ms) == ts.SerializeToString()


def test_latest_per_entity_keeps_newest_event() -> None:
    rows = [("A", 3, {"x": 1}), ("B", 1, {"x": 2}), ("A", 2, {"x": 3}), ("A", 5, {"x": 4})]
    latest = latest_per_entity(rows)
    assert latest["A"] == ("A", 5, {"x": 4})
    assert latest["B"] == ("B", 1, {"x": 2})
