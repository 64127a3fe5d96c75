"""`run_ingest`: every source -> validate -> priority -> one upsert per table -> quality report.

Priority is per series (ingestion/priority.py: one source per symbol, overlaps compared and the
disagreements written to `vendor_disagreements`), then the series-continuity guard
(ingestion/continuity.py) runs on `bars`. `corporate_actions` is written before `bars` because
the cross-vendor comparison converts split-adjusted prices with it.

Why this shape: a source failure (missing file, malformed CSV, API down, database down) is
recorded for that source and the others still load. Each canonical table is written once per run
(all its sources together), which is both faster and keeps the cross-source priority in one
place. Writes are idempotent upserts on the table key; an unchanged row keeps its stored version
(including `ingested_at`), so running twice gives identical tables and a later run with new
dates appends only those.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter

import numpy as np
import pandas as pd
from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from finfeast.offline import OfflineTables, ensure_database, open_tables
from ingestion.batch import Checked
from ingestion.context import NO_DATA_DIR_HELP, NoDataDirectory, SourceContext
from ingestion.continuity import unexplained_switches
from ingestion.priority import apply_priority
from ingestion.quarantine import quarantine_rows
from ingestion.report import IngestSummary, SourceResult, write_quality_report
from ingestion.rules import SOURCE_SWITCH
from ingestion.sources import REGISTRY, SourceDef, disclosures, resolve_sources
from ingestion.tables import QUARANTINE, TABLES, VENDOR_DISAGREEMENTS
from ingestion.validate import check_batch

REPORT_NAME = "quality_report.json"
IGNORE_ON_COMPARE = ("ingested_at",)


def describe(exc: BaseException) -> str:
    """One line a user can act on."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _extract(defn: SourceDef, ctx: SourceContext, ingested_at: pd.Timestamp) -> list[Checked]:
    module = importlib.import_module(defn.module)
    batches = module.extract(ctx)
    return [check_batch(defn.name, b, ingested_at) for b in batches]


NO_DATA_DIR = NO_DATA_DIR_HELP


def _skip_reason(defn: SourceDef, ctx: SourceContext) -> str | None:
    if defn.needs_data_dir and ctx.settings.data_dir is None:
        return NO_DATA_DIR
    module = importlib.import_module(defn.module)
    fn = getattr(module, "skip_reason", None)
    return fn(ctx) if fn else None


_STORED_EXTRA = {"bars": ("close", "price_basis"), "corporate_actions": ("cash_dividend",)}
WRITTEN_BY_RUNNER = (QUARANTINE.name, VENDOR_DISAGREEMENTS.name)


def _stored_claims(tables: OfflineTables, table: str, running: set[str]) -> pd.DataFrame | None:
    """Rows already stored in `table` by sources of the registry that are not part of this run
    (key, entity, source and the compared value)."""
    writers = {s.name for s in REGISTRY if table in s.tables}
    if writers <= running or not tables.exists(table):
        return None
    spec = TABLES[table]
    cols = list(dict.fromkeys([*spec.key, *spec.entity, "source"]))
    try:
        stored = tables.read(table, columns=[*cols, *_STORED_EXTRA.get(table, ())])
    except Exception:  # noqa: BLE001 - a table stored by an older version lacks a column
        stored = tables.read(table, columns=cols)
    base = {v: str(v).split(":", 1)[0] for v in stored["source"].unique()}
    return stored[~stored["source"].map(base).isin(running)]


def _purge(tables: OfflineTables, table: str, purge: pd.DataFrame, entity: list[str]) -> int:
    """Delete stored rows of lower-ranked sources whose series a running source now owns."""
    if purge.empty:
        return 0
    stored = tables.read(table)
    hit = stored[[*entity, "source"]].merge(purge.assign(_hit=True), how="left")["_hit"]
    drop = hit.fillna(False).to_numpy(dtype=bool)
    if drop.any():
        tables.replace(table, stored.loc[~drop].reset_index(drop=True))
        logger.warning("table {}: {} stored rows removed (series now owned by another source)",
                       table, int(drop.sum()))  # fmt: skip
    return int(drop.sum())


def _stored_actions(tables: OfflineTables, checked: list[Checked]) -> pd.DataFrame | None:
    """The corporate actions of this run, or the stored table when no source delivered any."""
    mine = [c.accepted for c in checked if c.table == "corporate_actions" and not c.accepted.empty]
    if mine:
        return pd.concat(mine, ignore_index=True)
    if tables.exists("corporate_actions"):
        return tables.read("corporate_actions")
    return None


def _guard_switches(group: list[Checked], actions: pd.DataFrame | None) -> int:
    """Quarantine rows after a source/basis switch that no corporate action explains."""
    parts = [c.accepted for c in group if not c.accepted.empty]
    if len(parts) < 1:
        return 0
    owners = np.concatenate([np.full(len(c.accepted), i) for i, c in enumerate(group)])
    labels = np.concatenate([c.accepted.index.to_numpy() for c in group])
    frame = pd.concat(parts, ignore_index=True)
    mask, details = unexplained_switches(frame, actions)
    if not mask.any():
        return 0
    detail = pd.Series(details, index=np.flatnonzero(mask))
    for i, c in enumerate(group):
        hit = np.flatnonzero(mask & (owners == i))
        if not len(hit):
            continue
        moved = c.raw.loc[labels[hit]].copy()
        moved["_rule"] = SOURCE_SWITCH
        moved["_detail"] = detail.loc[hit].to_numpy()
        c.rejected = pd.concat([c.rejected, moved], ignore_index=True)
        c.accepted = c.accepted[~c.accepted.index.isin(labels[hit])]
    return int(mask.sum())


def run_ingest(
    settings: Settings, sources: list[str] | None = None, progress: bool = True
) -> IngestSummary:
    """Load the named sources (all by default) into the offline tables of `settings`' profile."""
    defs = resolve_sources(sources)
    settings.ensure_dirs()
    ctx = SourceContext(settings, progress)
    ingested_at = pd.Timestamp.now(tz="UTC").floor("us")
    results = {d.name: SourceResult(d.name, ",".join(d.tables)) for d in defs}
    checked: list[Checked] = []
    started = time.perf_counter()

    try:
        # prod: create the profile's database before any source (the simulated trading database
        # lives there too) connects to it
        ensure_database(settings)
    except FinfeastError as exc:  # the store is down: every table write fails and says so
        logger.error("offline store: {}", exc)
    for defn in _progress(defs, progress, "extract + validate"):
        res = results[defn.name]
        t0 = time.perf_counter()
        try:
            reason = _skip_reason(defn, ctx)
            if reason:
                res.status, res.error = "skipped", reason
                logger.info("source {}: {}", defn.name, reason)
                continue
            checked += _extract(defn, ctx, ingested_at)
        except NoDataDirectory as exc:  # a fresh clone: the packaged sources carry the run
            res.status, res.error = "skipped", str(exc)
            logger.info("source {}: skipped: {}", defn.name, exc)
        except Exception as exc:  # noqa: BLE001 - one source must never stop the others
            res.status, res.error = "failed", describe(exc)
            logger.error("source {} failed: {}", defn.name, res.error)
        finally:
            res.seconds += time.perf_counter() - t0

    tables = open_tables(settings)
    summary = IngestSummary(list(results.values()), disclosures=disclosures())
    running = {c.source for c in checked}
    disagreements = []
    for table in [t for t in TABLES if t not in WRITTEN_BY_RUNNER]:
        group = [c for c in checked if c.table == table]
        if not group:
            continue
        names = sorted({c.source for c in group})
        t0 = time.perf_counter()
        try:
            spec = TABLES[table]
            purged = 0
            actions = _stored_actions(tables, checked) if table == "bars" else None
            if len({c.source for c in group}) > 1 or any(
                table in s.tables for s in REGISTRY if s.name not in running
            ):
                outcome = apply_priority(
                    group,
                    table,
                    list(spec.key),
                    list(spec.entity),
                    _stored_claims(tables, table, running),
                    actions=actions,
                )
                if outcome.disagreements is not None:
                    disagreements.append(outcome.disagreements)
                purged = _purge(tables, table, outcome.purge, list(spec.entity or spec.key))
            if table == "bars":
                _guard_switches(group, actions)
            frame = pd.concat([c.accepted for c in group], ignore_index=True)
            written = tables.upsert(table, frame, spec.key, ignore=IGNORE_ON_COMPARE)
            summary.writes[table] = {
                "inserted": written.rows_inserted,
                "updated": written.rows_updated,
                "total": written.rows_total,
            }
            if purged:
                summary.writes[table]["purged"] = purged
            logger.info(
                "table {}: {} new, {} changed, {} stored ({:.2f}s)",
                table,
                written.rows_inserted,
                written.rows_updated,
                written.rows_total,
                time.perf_counter() - t0,
            )
        except Exception as exc:  # noqa: BLE001 - the table's sources fail, others go on
            for name in names:
                results[name].status = "failed"
                results[name].error = f"writing {table}: {describe(exc)}"
            logger.error("writing table {} failed: {}", table, describe(exc))
            checked = [c for c in checked if c.table != table]
        finally:
            for name in names:
                results[name].seconds += (time.perf_counter() - t0) / len(names)

    _write_disagreements(tables, disagreements, summary, ingested_at)
    _write_quarantine(tables, checked, results, ingested_at)
    _create_missing_tables(tables)
    for c in checked:
        res = results[c.source]
        if res.status == "failed":
            continue
        res.rows_read += c.rows_read
        res.rows_loaded += c.rows_loaded
        res.rows_quarantined += len(c.rejected)
        for rule, n in Counter(c.rejected["_rule"].astype(str)).items():
            res.rules[rule] = res.rules.get(rule, 0) + n
    summary.report_path = write_quality_report(
        summary,
        settings.reports_dir / REPORT_NAME,
        {
            "profile": settings.profile,
            "ingested_at": ingested_at.isoformat(),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    logger.info("ingest {} (report {})", summary, summary.report_path)
    return summary


def _create_missing_tables(tables: OfflineTables) -> None:
    """Every canonical table exists after an ingest (empty if no source filled it yet), so Feast
    views over them (e.g. `listings`) can be applied and materialized after a partial ingest."""
    for spec in TABLES.values():
        try:
            if not tables.exists(spec.name):
                tables.upsert(spec.name, spec.empty(), spec.key)
        except Exception as exc:  # noqa: BLE001 - the store is down: already reported per source
            logger.warning("could not create empty table {}: {}", spec.name, describe(exc))
            return


def _write_disagreements(
    tables: OfflineTables,
    frames: list[pd.DataFrame],
    summary: IngestSummary,
    ingested_at: pd.Timestamp,
) -> None:
    """Cross-vendor disagreements (both values, both sources) -> table + report section."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return
    spec = VENDOR_DISAGREEMENTS
    frame = spec.conform(pd.concat(frames, ignore_index=True), {"ingested_at": ingested_at})
    frame = frame.drop_duplicates(list(spec.key), keep="first")
    summary.disagreements = [
        {
            "symbol": r.symbol,
            "date": r.event_timestamp.tz_convert("America/New_York").date().isoformat(),
            "winner": f"{r.winner_source} {r.winner_value:g} ({r.winner_basis})",
            "loser": f"{r.loser_source} {r.loser_value:g} ({r.loser_basis}; "
            f"{r.loser_value_as_winner_basis:.4f} on the winner's basis)",
            "rel_diff": round(float(r.rel_diff), 6),
        }
        for r in frame.itertuples()
    ]
    try:
        tables.upsert(spec.name, frame, spec.key, ignore=IGNORE_ON_COMPARE)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the run goes on
        logger.error("writing {} failed: {}", spec.name, describe(exc))


def _write_quarantine(
    tables: OfflineTables,
    checked: list[Checked],
    results: dict[str, SourceResult],
    ingested_at: pd.Timestamp,
) -> None:
    frames = [quarantine_rows(c.source, c.table, c.rejected, ingested_at) for c in checked]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return
    try:
        tables.upsert(
            QUARANTINE.name,
            pd.concat(frames, ignore_index=True),
            QUARANTINE.key,
            ignore=IGNORE_ON_COMPARE,
        )
    except Exception as exc:  # noqa: BLE001 - rejected rows that cannot be kept fail their source
        for c in checked:
            if not c.rejected.empty:
                results[c.source].status = "failed"
                results[c.source].error = f"writing quarantine: {describe(exc)}"
        logger.error("writing quarantine failed: {}", describe(exc))


def _progress(items: list[SourceDef], enabled: bool, desc: str):  # noqa: ANN202 - iterator
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="source", leave=False)
