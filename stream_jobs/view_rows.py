"""One batch's output for one feature view: every row for the offline log, the newest per entity
for the online store.

Why not a list of per-row dicts: the market job folds bars in micro-batches into arrays (129
features per bar); turning every bar into a dict (or a pandas frame) only to keep the last one
per symbol online and COPY the rest was most of the per-event cost. A `FeatureBlock` keeps the
columnar form the kernels produce; the offline log encodes it directly (binary COPY, an Arrow
table) and dicts are built only for the rows the online store keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from stream_jobs.offline_log import log_frame as build_log_frame
from stream_jobs.offline_log import rows_to_frame
from stream_jobs.online_writer import Row, latest_per_entity
from stream_jobs.views import ViewSpec


@dataclass(frozen=True)
class FeatureBlock:
    """Rows of one view as arrays: entity ids, event times (epoch ms), and the view's float64 and
    int64 features as two 2-D blocks whose columns follow the view's order of those features.

    Why two blocks and not a frame: the binary COPY and the Arrow writer take whole columns, and
    building a 129-column pandas frame per batch cost more than the catalog kernels themselves.
    """

    keys: np.ndarray  # object array of str
    event_ms: np.ndarray  # int64
    floats: np.ndarray  # (n, len(float_names)) float64
    ints: np.ndarray  # (n, len(int_names)) int64
    float_names: tuple[str, ...]
    int_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def layout(view: ViewSpec) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(float64 names, int64 names) of `view` in view order; None if it has other dtypes."""
        floats = tuple(f for f, d in view.features if d == "float64")
        ints = tuple(f for f, d in view.features if d == "int64")
        return (floats, ints) if len(floats) + len(ints) == len(view.features) else None

    @classmethod
    def from_columns(
        cls,
        view: ViewSpec,
        keys: np.ndarray,
        event_ms: np.ndarray,
        columns: dict[str, np.ndarray],
    ) -> FeatureBlock:
        """A block of `view` from one 1-D array per feature (each of len(keys))."""
        layout = cls.layout(view)
        if layout is None:
            raise ValueError(f"view {view.name} has features that are neither float64 nor int64")
        floats, ints = layout
        n = len(keys)
        fblock = np.empty((n, len(floats)), dtype=np.float64)
        for j, name in enumerate(floats):
            fblock[:, j] = columns[name]
        iblock = np.empty((n, len(ints)), dtype=np.int64)
        for j, name in enumerate(ints):
            iblock[:, j] = columns[name]
        return cls(
            np.asarray(keys, dtype=object),
            np.asarray(event_ms, dtype=np.int64),
            fblock,
            iblock,
            floats,
            ints,
        )

    @classmethod
    def concat(cls, blocks: list[FeatureBlock]) -> FeatureBlock:
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        return cls(
            np.concatenate([b.keys for b in blocks]),
            np.concatenate([b.event_ms for b in blocks]),
            np.concatenate([b.floats for b in blocks]),
            np.concatenate([b.ints for b in blocks]),
            first.float_names,
            first.int_names,
        )

    def fits(self, view: ViewSpec) -> bool:
        """True if this block's columns are `view`'s features in `view`'s layout."""
        return self.layout(view) == (self.float_names, self.int_names)

    def has_repeats(self) -> bool:
        """True if some (entity, event time) occurs twice (the processors never emit that)."""
        pairs = zip(self.keys.tolist(), self.event_ms.tolist(), strict=True)
        return len(set(pairs)) != len(self)

    def take(self, idx: np.ndarray) -> FeatureBlock:
        return FeatureBlock(
            self.keys[idx],
            self.event_ms[idx],
            self.floats[idx],
            self.ints[idx],
            self.float_names,
            self.int_names,
        )

    def without(self, entities: Collection[str]) -> FeatureBlock:
        """This block minus the rows of `entities` (those the online write refused)."""
        if not entities:
            return self
        keep = ~np.isin(self.keys, np.array(list(entities), dtype=object))
        return self if keep.all() else self.take(np.flatnonzero(keep))

    def rows(self, idx: np.ndarray | None = None) -> list[Row]:
        """Rows `(entity, event_ms, {feature: value})` (plain Python values) at `idx` (None: all)."""
        pick = np.arange(len(self)) if idx is None else idx
        names = self.float_names + self.int_names
        out: list[Row] = []
        for key, ms, fl, it in zip(
            self.keys[pick].tolist(),
            self.event_ms[pick].tolist(),
            self.floats[pick].tolist(),
            self.ints[pick].tolist(),
            strict=True,
        ):
            out.append((key, ms, dict(zip(names, fl + it, strict=True))))
        return out

    def newest(self) -> np.ndarray:
        """Positions of each entity's newest row (largest event time; ties: the later row)."""
        order = np.argsort(self.event_ms, kind="stable")
        last = dict(zip(self.keys[order].tolist(), order.tolist(), strict=True))
        return np.fromiter(last.values(), dtype=np.int64, count=len(last))

    def log_frame(self, view: ViewSpec, created: datetime | None = None) -> pd.DataFrame:
        """The offline log's frame of these rows (`offline_log.log_frame`, as for row dicts)."""
        where = {name: (self.floats, j) for j, name in enumerate(self.float_names)}
        where.update({name: (self.ints, j) for j, name in enumerate(self.int_names)})

        def column(name: str, _dtype: str) -> np.ndarray:
            block, j = where[name]
            return block[:, j]

        return build_log_frame(view, self.keys, self.event_ms, column, created)


class ViewRows:
    """`count` rows of `view`; `latest` (newest row per entity); `frame()` / `rows()` on demand."""

    def __init__(
        self,
        view: ViewSpec,
        count: int,
        latest: list[Row],
        frame: Callable[[], pd.DataFrame],
        rows: Callable[[], list[Row]],
    ) -> None:
        self.view = view
        self.count = count
        self.latest = latest
        self._frame = frame
        self._rows = rows
        # The processor's own arrays when built from them: the offline log encodes them directly
        # (binary COPY, an Arrow table) instead of `frame()`.
        self.source: FeatureBlock | None = None

    @classmethod
    def from_rows(cls, view: ViewSpec, rows: list[Row]) -> ViewRows:
        return cls(
            view,
            len(rows),
            list(latest_per_entity(rows).values()),
            lambda: rows_to_frame(view, rows),
            lambda: rows,
        )

    @classmethod
    def from_block(cls, view: ViewSpec, block: FeatureBlock) -> ViewRows:
        """Rows of `view` held as a `FeatureBlock` (any row order)."""
        out = cls(
            view,
            len(block),
            block.rows(block.newest()),
            lambda: block.log_frame(view),
            block.rows,
        )
        out.source = block
        return out

    @classmethod
    def concat(cls, parts: list[ViewRows]) -> ViewRows:
        """One `ViewRows` of several of the same view (the consumer's message-by-message retry)."""
        if len(parts) == 1:
            return parts[0]
        view = parts[0].view
        latest = list(latest_per_entity([r for p in parts for r in p.latest]).values())

        def frame() -> pd.DataFrame:
            frames = [p.frame() for p in parts if p.count]
            return pd.concat(frames, ignore_index=True) if frames else parts[0].frame()

        return cls(
            view,
            sum(p.count for p in parts),
            latest,
            frame,
            lambda: [r for p in parts for r in p.rows()],
        )

    def frame(self) -> pd.DataFrame:
        return self._frame()

    def rows(self) -> list[Row]:
        return self._rows()
