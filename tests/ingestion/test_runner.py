"""run_ingest as a whole: accounting, the quality report, idempotence, incremental loads and
bad input (missing file, malformed CSV, a failing database), each failing only its source."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from ingestion_data import linked_data_dir

from finfeast.errors import FinfeastError
from finfeast.offline import open_tables
from ingestion import SOURCES, run_ingest
from ingestion.tables import TABLES

LEAN = "daily/lean_equity_daily_bars.csv.gz"


def test_all_sources_balance_and_report(full_local) -> None:
    settings, summary = full_local
    assert summary.status == "ok"
    assert [s.name for s in summary.sources] == list(SOURCES)
    for s in summary.sources:
        if s.status == "skipped":
            continue
        assert s.status == "ok", (s.name, s.error)
        assert s.rows_read > 0
        assert s.rows_read == s.rows_loaded + s.rows_quarantined, s.name
        assert sum(s.rules.values()) == s.rows_quarantined, s.name
    file_sources = [s for s in summary.sources if s.name not in ("alphavantage", "trading")]
    assert sum(s.rows_read for s in file_sources) >= 700_000
    report = json.loads((settings.reports_dir / "quality_report.json").read_text())
    assert report["status"] == "ok"
    for entry, s in zip(report["sources"], summary.sources, strict=True):
        assert {k: entry[k] for k in ("name", "rows_read", "rows_loaded", "rows_quarantined", "rules")} == {
            "name": s.name, "rows_read": s.rows_read, "rows_loaded": s.rows_loaded,
            "rows_quarantined": s.rows_quarantined, "rules": s.rules,
        }  # fmt: skip
    q = open_tables(settings).read("quarantine")
    assert len(q) == sum(s.rows_quarantined for s in summary.sources)


def test_running_twice_gives_identical_tables(full_local) -> None:
    settings, first = full_local
    tables = open_tables(settings)
    names = [t for t in TABLES if tables.exists(t)]
    before = {t: tables.read(t) for t in names}
    again = run_ingest(settings, progress=False)
    assert again.status == "ok"
    assert all(w["inserted"] == 0 and w["updated"] == 0 for w in again.writes.values())
    for t in names:
        pd.testing.assert_frame_equal(tables.read(t), before[t], obj=t)
    assert [s.rows_loaded for s in again.sources] == [s.rows_loaded for s in first.sources]


def _lean_until(data_dir: Path, last_date: str) -> tuple[bytes, int]:
    with gzip.open(data_dir / LEAN, "rt") as fh:
        lines = fh.read().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[1] <= last_date]
    return gzip.compress(("\n".join(kept) + "\n").encode()), len(lines) - len(kept)


def test_a_later_run_appends_only_new_dates(
    data_dir: Path, settings_factory, tmp_path: Path
) -> None:
    early, n_new = _lean_until(data_dir, "2019-12-31")
    old_dir = linked_data_dir(data_dir, tmp_path / "old", {LEAN: early})
    settings = settings_factory("local", "incremental")
    from dataclasses import replace

    first = run_ingest(replace(settings, data_dir=old_dir), sources=["lean_daily"], progress=False)
    stored = open_tables(settings).read("bars")
    second = run_ingest(settings, sources=["lean_daily"], progress=False)  # the full real file
    assert n_new > 0
    assert second.writes["bars"] == {"inserted": n_new, "updated": 0, "total": len(stored) + n_new}
    after = open_tables(settings).read("bars")
    merged = after.merge(stored, on=["symbol", "event_timestamp"], suffixes=("", "_old"))
    assert len(merged) == len(stored)
    assert (merged["ingested_at"] == merged["ingested_at_old"]).all()  # old rows untouched
    assert (after["event_timestamp"] > pd.Timestamp("2020-01-01", tz="UTC")).sum() == n_new
    assert first.source("lean_daily").rows_read + n_new == second.source("lean_daily").rows_read


def test_missing_file_fails_only_its_source(
    data_dir: Path, settings_factory, tmp_path: Path
) -> None:
    broken = linked_data_dir(data_dir, tmp_path / "d", {"datasets/finance-vix/vix-daily.csv": None})
    from dataclasses import replace

    settings = replace(settings_factory("local", "missing"), data_dir=broken)
    summary = run_ingest(settings, sources=["vix_oil", "arch_indices"], progress=False)
    assert summary.status == "partial"
    vix = summary.source("vix_oil")
    assert (
        vix.status == "failed"
        and "input file not found" in vix.error
        and "vix-daily.csv" in vix.error
    )
    assert summary.source("arch_indices").status == "ok"
    assert len(open_tables(settings).read("bars")) == summary.source("arch_indices").rows_loaded
    assert open_tables(settings).read("macro").empty


def test_malformed_csv(data_dir: Path, settings_factory, tmp_path: Path) -> None:
    garbage = gzip.compress(b"ticker;when;price\nAAPL;2020-01-02;1\n")
    broken = linked_data_dir(data_dir, tmp_path / "d", {LEAN: garbage})
    from dataclasses import replace

    settings = replace(settings_factory("local", "malformed"), data_dir=broken)
    summary = run_ingest(settings, sources=["lean_daily", "arch_indices"], progress=False)
    lean = summary.source("lean_daily")
    assert summary.status == "partial"
    assert lean.status == "failed" and "malformed input, missing column(s)" in lean.error
    assert summary.source("arch_indices").status == "ok"


def test_bad_rows_in_a_good_csv_are_quarantined(
    data_dir: Path, settings_factory, tmp_path: Path
) -> None:
    with gzip.open(data_dir / LEAN, "rt") as fh:
        lines = fh.read().splitlines()
    n = len(lines) - 1
    lines.insert(5, "AAPL,1998-01-09,oops,1,1,1,100")  # unparseable price
    lines.insert(9, "AAPL,1998-01-15,1,2")  # too few fields
    text = gzip.compress(("\n".join(lines) + "\n").encode())
    from dataclasses import replace

    settings = replace(
        settings_factory("local", "badrows"),
        data_dir=linked_data_dir(data_dir, tmp_path / "d", {LEAN: text}),
    )
    src = run_ingest(settings, sources=["lean_daily"], progress=False).source("lean_daily")
    assert src.status == "ok"
    assert src.rows_read == n + 2
    assert src.rules["malformed_row"] == 1
    assert src.rules["required_fields"] == 1
    assert src.rows_loaded == n  # the original rows all load
    q = open_tables(settings).read("quarantine")
    assert q.loc[q["rule"] == "malformed_row", "row"].str.contains("1998-01-15").all()
    assert json.loads(q.loc[q["rule"] == "required_fields", "row"].iloc[0])["open"] == "oops"


def test_trading_database_outage_fails_only_its_source(settings_factory, monkeypatch) -> None:
    monkeypatch.setenv(
        "FINFEAST_TRADING_DB_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    )
    settings = settings_factory("local", "pg_down")
    summary = run_ingest(settings, sources=["trading", "arch_indices"], progress=False)
    assert summary.status == "partial"
    trading = summary.source("trading")
    assert trading.status == "failed"
    assert "trading database unreachable" in trading.error and "127.0.0.1:1" in trading.error
    assert summary.source("arch_indices").status == "ok"


def test_offline_store_outage_is_reported_not_raised(settings_factory) -> None:
    from dataclasses import replace

    settings = replace(settings_factory("local", "store_down"), profile="prod", pg_port=1)
    summary = run_ingest(settings, sources=["arch_indices", "listings"], progress=False)
    assert summary.status == "partial"
    for s in summary.sources:
        assert s.status == "failed" and "PostgreSQL unreachable" in s.error


def test_unknown_source_is_an_error(local_settings) -> None:
    with pytest.raises(FinfeastError, match="unknown source"):
        run_ingest(local_settings, sources=["stocks_5yr", "nope"], progress=False)


def test_cli_exit_code_and_summary_say_partial(data_dir: Path, tmp_path: Path) -> None:
    broken = linked_data_dir(data_dir, tmp_path / "d", {"datasets/finance-vix/vix-daily.csv": None})
    env = {**os.environ, "FINFEAST_WORKDIR": str(tmp_path / "w"), "FINFEAST_PROFILE": "local"}
    proc = subprocess.run(
        [sys.executable, "-m", "finfeast.cli", "ingest", "--sources", "vix_oil,arch_indices",
         "--data-dir", str(broken), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "status: partial" in proc.stdout
    assert "input file not found" in proc.stdout.replace("\n", " ") or "input file" in proc.stdout
    assert (tmp_path / "w" / "local" / "reports" / "quality_report.json").exists()


def test_prod_database_is_created_on_first_use(settings_factory) -> None:
    from dataclasses import replace

    import psycopg

    base = settings_factory("prod", "autodb")
    settings = replace(base, pg_db=base.pg_db + "_fresh")
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    try:
        summary = run_ingest(settings, sources=["arch_indices"], progress=False)
        assert summary.status == "ok"
        assert len(open_tables(settings).read("bars")) == summary.source("arch_indices").rows_loaded
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{settings.pg_db}" WITH (FORCE)')
