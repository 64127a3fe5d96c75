"""Build the offline feature and label tables from the canonical tables (`finfeast features`).

Why one entry point: the main job, the CLI and the tests all need the same recipe, on either
profile and either engine:

    bars (+ macro, fx_rates, listings when present; corporate_actions + the bars' price_basis)
      -> bar-only catalog (`transforms.compute_features`, prices adjusted as of each bar) +
         market-context family
      -> ONE wide table `features_daily` (key symbol, event_timestamp; + created_timestamp)
      -> `labels_daily` (total-return forward returns; never joined into features_daily)

Both tables are rebuilt in full on every run (`replace`): the catalog is deterministic, so a rebuild
after a definition change or a rollback gives exactly the values of that definition. The committed
family versions (`feature_repo/versions.yaml`, `transforms.versioning`) that built the tables are
recorded in the deployment's build record; a family whose code differs from them is flagged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from finfeast.offline import OfflineTables, open_tables
from transforms.adjustments import ACTIONS_TABLE, ActionBook, basis_by_symbol
from transforms.labels import LABELS_TABLE, compute_labels

FEATURES_TABLE = "features_daily"
FEATURE_KEY = ("symbol", "event_timestamp")
BAR_COLUMNS = ("symbol", "event_timestamp", "open", "high", "low", "close", "volume")
CONTEXT_TABLES = ("macro", "fx_rates", "listings")
ENGINES = ("local", "dask")


@dataclass
class FeatureBuildSummary:
    """What a build wrote and how long each step took."""

    engine: str
    rows: int = 0
    symbols: int = 0
    n_features: int = 0
    n_bar_features: int = 0
    n_context_features: int = 0
    label_rows: int = 0
    context_tables: tuple[str, ...] = ()
    versions: dict[str, int] = field(default_factory=dict)
    version_changes: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    bars_quarantined: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    status: str = "ok"

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per step, for the summary table of `finfeast run` / `finfeast features`."""
        detail = {
            "read": f"{self.rows:,} bars of {self.symbols} symbols"
            + (
                f" ({self.bars_quarantined:,} unusable, quarantined)"
                if self.bars_quarantined
                else ""
            )
            + "; context: "
            + (", ".join(self.context_tables) or "none"),
            "context inputs": "index returns, sector means, macro/FX series",
            "bar features": f"{self.n_bar_features} bar-only features",
            "context features": f"{self.n_context_features} market-context features",
            "features (dask)": f"{self.n_features} features, partitioned by symbol",
            "assemble": "one wide frame, declared dtypes",
            "write features": f"{FEATURES_TABLE}: {self.rows:,} rows x {self.n_features} features",
            "labels": f"{LABELS_TABLE}: {self.label_rows:,} rows",
        }
        rows = [
            {"step": step, "seconds": round(sec, 2), "detail": detail.get(step, "")}
            for step, sec in self.seconds.items()
        ]
        if self.version_changes:  # a definition changed (or first build): say which
            changes = ", ".join(
                f"{fam} {'new' if old is None else f'v{old}'} -> v{new}"
                for fam, (old, new) in sorted(self.version_changes.items())
            )
            rows.append({"step": "versions", "seconds": 0.0, "detail": changes})
        return rows

    def __str__(self) -> str:
        return (
            f"{FEATURES_TABLE}: {self.rows:,} rows x {self.n_features} features "
            f"({self.symbols} symbols, engine {self.engine}) in {self.total_seconds:.1f}s"
        )


class _Timer:
    def __init__(self, summary: FeatureBuildSummary) -> None:
        self.summary = summary

    def run(self, step: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.summary.seconds[step] = time.perf_counter() - t0
        logger.info("features: {} in {:.2f}s", step, self.summary.seconds[step])
        return out


def read_bars(tables: OfflineTables) -> pd.DataFrame:
    """The canonical daily bars, sorted by symbol and time; a clear error if not ingested yet."""
    if not tables.exists("bars"):
        raise FinfeastError("offline table 'bars' does not exist: run `finfeast ingest` first")
    columns = list(BAR_COLUMNS)
    try:
        bars = tables.read("bars", columns=[*columns, "price_basis"])
    except Exception:  # an older bars table without the price_basis column (as traded)
        bars = tables.read("bars", columns=columns)
    if bars.empty:
        raise FinfeastError("offline table 'bars' is empty: nothing to compute features from")
    bars["event_timestamp"] = pd.to_datetime(bars["event_timestamp"], utc=True)
    for col in ("open", "high", "low", "close", "volume"):
        bars[col] = bars[col].astype("float64")
    return bars.sort_values(list(FEATURE_KEY), kind="stable").reset_index(drop=True)


def read_action_book(tables: OfflineTables, bars: pd.DataFrame) -> ActionBook:
    """The corporate actions of the bars' series: the `corporate_actions` table when it exists
    (none otherwise), less the splits already in a `split_adjusted_as_of` basis."""
    if not tables.exists(ACTIONS_TABLE):
        logger.info("features: no {} table: prices taken as they are", ACTIONS_TABLE)
        return ActionBook.empty()
    actions = tables.read(ACTIONS_TABLE)
    book = ActionBook.from_frame(actions, basis_by_symbol(bars))
    logger.info("features: {} corporate action(s) of {} symbol(s)", len(book), len(book.symbols))
    return book


def drop_unusable_bars(bars: pd.DataFrame, tables: OfflineTables) -> tuple[pd.DataFrame, int]:
    """Bars the catalog can fold in; the others go to the quarantine table with their reason.

    Ingestion already quarantines invalid rows, but a bars table can be written by anything
    (a stream log, a hand load): one bad bar must not stop the whole build, nor vanish unseen.
    """
    from transforms.validation import all_usable, bar_problems

    if all_usable(bars):
        return bars, 0
    from ingestion.quarantine import quarantine_rows
    from ingestion.tables import QUARANTINE

    reasons = bar_problems(bars)
    bad = (reasons != "").to_numpy()
    rejected = bars[bad].assign(_rule="unusable_for_features", _detail=reasons[bad])
    now = pd.Timestamp.now(tz="UTC").floor("us")
    tables.upsert(
        QUARANTINE.name,
        quarantine_rows("features", "bars", rejected, now),
        QUARANTINE.key,
        ignore=("ingested_at",),
    )
    first = rejected.iloc[0]
    logger.warning(
        "features: {} bar(s) quarantined, e.g. {} {}: {}",
        int(bad.sum()),
        first["symbol"],
        first["event_timestamp"],
        first["_detail"],
    )
    return bars[~bad].reset_index(drop=True), int(bad.sum())


def read_context_tables(tables: OfflineTables) -> dict[str, pd.DataFrame]:
    """The context tables that exist (macro, fx_rates, listings); missing ones are skipped."""
    found = {}
    for name in CONTEXT_TABLES:
        if tables.exists(name):
            df = tables.read(name)
            if "event_timestamp" in df.columns:
                df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
            found[name] = df
    return found


def compute_all_features(
    bars: pd.DataFrame,
    context_tables: dict[str, pd.DataFrame] | None = None,
    engine: str = "local",
    dask_address: str | None = None,
    actions: ActionBook | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Bar-only catalog + context family for `bars`: one row per bar, key columns first
    (bar features through the corporate actions in `actions`).

    Returns the wide frame (sorted by symbol, event_timestamp) and seconds per step.
    """
    from transforms.context import prepare_context

    if engine not in ENGINES:
        raise FinfeastError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    ctx_tables = context_tables or {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ctx = prepare_context(
        bars, ctx_tables.get("macro"), ctx_tables.get("fx_rates"), ctx_tables.get("listings")
    )
    seconds["context inputs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if engine == "dask":
        from transforms.dask_engine import compute_partitioned

        bar_feats, ctx_feats = compute_partitioned(bars, ctx, address=dask_address, actions=actions)
        seconds["features (dask)"] = time.perf_counter() - t0
    else:
        from transforms import compute_features
        from transforms.context import context_features

        bar_feats = compute_features(bars, actions=actions)
        seconds["bar features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx_feats = context_features(bars, ctx)
        seconds["context features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wide = _assemble(bar_feats, ctx_feats)
    seconds["assemble"] = time.perf_counter() - t0
    return wide, seconds


def _sorted_by_key(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by (symbol, event_timestamp); no copy when it already is."""
    sym = frame["symbol"].to_numpy()
    ts = frame["event_timestamp"]
    same = sym[1:] == sym[:-1]
    ordered = bool(np.all(sym[1:][~same] > sym[:-1][~same])) and bool(
        np.all(np.diff(_ns(ts))[same] > 0)
    )
    if not ordered:
        frame = frame.sort_values(list(FEATURE_KEY), kind="stable")
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)  # copies: only when the index is not 0..n-1
    return frame


def _ns(ts: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(ts).tz_convert("UTC").as_unit("ns").asi8


def _assemble(bar_feats: pd.DataFrame, ctx_feats: pd.DataFrame) -> pd.DataFrame:
    """One wide frame, every feature in its declared dtype, without copying the feature blocks.

    Why not concat + astype + consolidate: at full size each of those copies ~700 MB, slowly,
    and Parquet does not need one block. The bar-feature frame is fresh (ours to extend).
    """
    from transforms import catalog
    from transforms.context import FEATURE_NAMES

    bar_feats, ctx_feats = _sorted_by_key(bar_feats), _sorted_by_key(ctx_feats)
    aligned = bar_feats["symbol"].equals(ctx_feats["symbol"]) and bar_feats[
        "event_timestamp"
    ].equals(ctx_feats["event_timestamp"])
    if not aligned:
        raise FinfeastError("internal: bar and context feature rows are not aligned")
    declared = {spec.name: spec.dtype for spec in catalog.all_features()}
    parts = [bar_feats, ctx_feats[list(FEATURE_NAMES)]]
    for i, part in enumerate(parts):
        fixes = {}
        for name in part.columns:
            if name not in declared:
                continue
            col = part[name]
            target = "float64"
            if declared[name] == "int64":
                target = "int64" if col.notna().all() else "Int64"
            if str(col.dtype) != target:
                fixes[name] = col.astype(target)
        if fixes:  # only the few columns whose dtype differs are rebuilt
            parts[i] = part.assign(**fixes)
    wide, context = parts
    for name in context.columns:  # inserting columns adds blocks; concat would copy them all
        wide[name] = context[name].to_numpy()
    return wide


def build_feature_tables(
    settings: Settings, engine: str = "local", dask_address: str | None = None
) -> FeatureBuildSummary:
    """Compute the whole catalog from the offline canonical tables and write the feature and
    label tables of `settings`' profile."""
    from transforms import catalog
    from transforms.context import FEATURE_NAMES
    from transforms.versioning import active_versions, history_path, record_build

    settings.ensure_dirs()
    tables = open_tables(settings)
    summary = FeatureBuildSummary(engine=engine)
    timer = _Timer(summary)

    def read() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        return read_bars(tables), read_context_tables(tables)

    bars, ctx_tables = timer.run("read", read)
    book = read_action_book(tables, bars)
    bars, summary.bars_quarantined = drop_unusable_bars(bars, tables)
    if bars.empty:
        raise FinfeastError("no usable bars: every row was quarantined (see table 'quarantine')")
    summary.rows, summary.symbols = len(bars), int(bars["symbol"].nunique())
    summary.context_tables = tuple(ctx_tables)

    wide, step_seconds = compute_all_features(bars, ctx_tables, engine, dask_address, book)
    summary.seconds.update(step_seconds)
    logger.info("features: computed in {:.2f}s", sum(step_seconds.values()))
    summary.n_context_features = len(FEATURE_NAMES)
    summary.n_features = wide.shape[1] - len(FEATURE_KEY)
    summary.n_bar_features = summary.n_features - summary.n_context_features

    created = pd.Timestamp(datetime.now(UTC))
    wide["created_timestamp"] = created
    timer.run("write features", lambda: tables.replace(FEATURES_TABLE, wide))

    def labels() -> int:
        frame = compute_labels(bars, actions=book)
        frame["created_timestamp"] = created
        tables.replace(LABELS_TABLE, frame)
        return len(frame)

    summary.label_rows = timer.run("labels", labels)
    before = {
        k: v["version"] for k, v in active_versions(history_path(settings.profile_dir)).items()
    }
    summary.versions = record_build(settings, catalog.FAMILIES.values())
    summary.version_changes = {
        fam: (before.get(fam), ver)
        for fam, ver in summary.versions.items()
        if before.get(fam) != ver
    }
    empty = [c for c in wide.columns[len(FEATURE_KEY) :] if not wide[c].notna().any()]
    if empty:  # e.g. context features when macro/fx_rates were not ingested
        logger.warning("features: {} feature column(s) entirely null: {}", len(empty), empty[:8])
    return summary
