"""Served rows as columns: the shape serving logs and the audit work with.

`OnlineRows.from_http` turns the body of Feast's `/get-online-features` response into columns
(join key, feature values, timestamps, statuses); `finfeast serve` hands those to the serving
logger (`feature_log.ServingLogger`). `UnsupportedRequest` is the "use Feast's own path" signal
of the lean point-in-time join (`historical.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EPOCH_STR = "1970-01-01T00:00:00Z"
PRESENT = "PRESENT"
STATUS_NAMES = ("INVALID", "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE")


class UnsupportedRequest(Exception):
    """The request needs Feast features the lean path does not implement: use the SDK path."""


@dataclass
class OnlineRows:
    """Column-oriented result, convertible to Feast's SDK dict or HTTP JSON shape."""

    join_key: str
    entities: list[Any]
    feature_names: list[str]
    values: list[list[Any]]  # per feature, per entity
    timestamps: list[list[str]]  # per feature, per entity (RFC 3339, epoch when absent)
    statuses: list[list[int]] | None = None  # FieldStatus numbers; None = all PRESENT
    request_data: dict[str, list[Any]] | None = None  # request-source columns (on-demand views)

    @classmethod
    def from_http(cls, payload: dict[str, Any], request_columns: list[str]) -> OnlineRows:
        """Rows from a Feast `/get-online-features` response body.

        `request_columns` are the keys of the request's `entities` object: the first one present
        in the response is the join key; others (request data such as a live price) are kept
        in `request_data`; every other column is a feature.
        """
        names = payload["metadata"]["feature_names"]
        columns = dict(zip(names, payload["results"], strict=True))
        given = [n for n in names if n in request_columns]
        if not given:
            raise UnsupportedRequest("the response holds none of the request's entity columns")
        feats = [n for n in names if n not in request_columns]
        codes = {name: i for i, name in enumerate(STATUS_NAMES)}
        return cls(
            join_key=given[0],
            entities=list(columns[given[0]]["values"]),
            feature_names=feats,
            values=[columns[n]["values"] for n in feats],
            timestamps=[columns[n].get("event_timestamps", []) for n in feats],
            statuses=[[codes.get(x, 0) for x in columns[n]["statuses"]] for n in feats],
            request_data={n: list(columns[n]["values"]) for n in given[1:]},
        )

    def to_dict(self) -> dict[str, list[Any]]:
        """Same as `OnlineResponse.to_dict()`."""
        out: dict[str, list[Any]] = {self.join_key: list(self.entities)}
        out.update(zip(self.feature_names, self.values, strict=True))
        return out

    def to_http(self) -> dict[str, Any]:
        """Same as the body of Feast's `/get-online-features` response."""
        n = len(self.entities)
        results = [
            {
                "values": list(self.entities),
                "statuses": [PRESENT] * n,
                "event_timestamps": [EPOCH_STR] * n,
            }
        ]
        statuses = self.statuses or [[1] * n for _ in self.values]
        for values, stamps, codes in zip(self.values, self.timestamps, statuses, strict=True):
            results.append(
                {
                    "values": [_json_float(v) for v in values],
                    "statuses": [STATUS_NAMES[c] for c in codes],
                    "event_timestamps": stamps,
                }
            )
        return {
            "metadata": {"feature_names": [self.join_key, *self.feature_names]},
            "results": results,
        }


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return v
