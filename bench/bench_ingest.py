"""Ingestion throughput against a pyarrow-only floor measured in the same run, and PostgreSQL COPY.

What is measured (real data, local profile unless noted):
  ingest     `run_ingest` of every file/package source (stocks_5yr, arch_indices, lean_daily,
             vix_oil, fx, listings: ~960k rows read) into a fresh workdir: parse + validate +
             quarantine + write Parquet. Rows/s = rows read / wall seconds.
  rerun      the same ingest again on the same workdir (idempotent: nothing rewritten).
  floor      the same files read with pyarrow.csv alone (the ECB zip too) and written as Parquet
             (zstd) with pyarrow alone: no validation, no mapping, no timestamps.
  pg copy    prod profile: `PostgresTables.upsert` of the ingested `bars` (679k rows) into a new
             table (COPY, then the primary key), then into the full table (COPY to staging +
             merge, nothing changes), in a scratch database that is dropped afterwards.

Usage: .venv/bin/python bench/bench_ingest.py [--repeats 3] [--skip-pg]
Prints a Markdown block for bench/RESULTS.md. Compare ratios within one run (noisy machine).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from finfeast.config import load_settings  # noqa: E402

FILE_SOURCES = ["stocks_5yr", "arch_indices", "lean_daily", "vix_oil", "fx", "listings"]


def input_files(data_dir: Path) -> list[Path | tuple[Path, str]]:
    from ingestion.arch_indices import INDICES, arch_data_dir
    from ingestion.fx import ecb_zip_path

    rel = [
        "daily/all_stocks_5yr.csv.gz",
        "daily/lean_equity_daily_bars.csv.gz",
        "datasets/finance-vix/vix-daily.csv",
        "datasets/oil-prices/wti-daily.csv",
        "datasets/oil-prices/brent-daily.csv",
        "datasets/exchange-rates/monthly.csv",
        "datasets/s-and-p-500-companies/constituents.csv",
        "datasets/nasdaq-listings/nasdaq-listed-symbols.csv",
    ]
    files: list[Path | tuple[Path, str]] = [data_dir / r for r in rel]
    files += [arch_data_dir() / r for r in INDICES.values()]
    files.append((ecb_zip_path(), "eurofxref-hist.csv"))
    return files


def floor_once(files: list, out: Path) -> tuple[float, int]:
    """Read every input with pyarrow alone and write it as Parquet: the cost of moving the bytes."""
    t0 = time.perf_counter()
    rows = 0
    for i, f in enumerate(files):
        if isinstance(f, tuple):
            with zipfile.ZipFile(f[0]) as zf:
                table = pacsv.read_csv(io.BytesIO(zf.read(f[1])))
        else:
            table = pacsv.read_csv(f)
        rows += table.num_rows
        pq.write_table(table, out / f"f{i}.parquet", compression="zstd")
    return time.perf_counter() - t0, rows


def ingest_once(settings) -> tuple[float, object]:  # noqa: ANN001
    from ingestion import run_ingest

    t0 = time.perf_counter()
    summary = run_ingest(settings, sources=FILE_SOURCES, progress=False)
    return time.perf_counter() - t0, summary


def stats(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"
    )


def bench_pg(bars, repeats: int) -> dict[str, float]:  # noqa: ANN001
    import psycopg

    from finfeast.offline import PostgresTables

    name = f"finfeast_bench_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        tables = PostgresTables(f"host=127.0.0.1 port=5432 user=postgres dbname={name}")
        key = ["symbol", "event_timestamp"]
        first, merge, read = [], [], []
        for _ in range(repeats):
            tables.drop("bars_bench")
            t0 = time.perf_counter()
            tables.upsert("bars_bench", bars, key, ignore=["ingested_at"])
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = tables.upsert("bars_bench", bars, key, ignore=["ingested_at"])
            merge.append(time.perf_counter() - t0)
            assert res.rows_inserted == 0 and res.rows_updated == 0
            t0 = time.perf_counter()
            back = tables.read("bars_bench")
            read.append(time.perf_counter() - t0)
            assert len(back) == len(bars)
        return {
            "copy_s": statistics.median(first),
            "merge_s": statistics.median(merge),
            "read_s": statistics.median(read),
            "rows": len(bars),
        }
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    from dataclasses import replace

    from loguru import logger

    logger.remove()
    import os

    load_before = os.getloadavg()[0]
    base = load_settings("local")
    files = input_files(Path(base.data_dir))
    ingest_times, rerun_times, floor_times = [], [], []
    summary = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ingest_once(replace(base, workdir=tmp / "warmup"))  # imports, page cache
        for i in range(args.repeats):
            out = tmp / f"floor{i}"
            out.mkdir()
            secs, floor_rows = floor_once(files, out)
            floor_times.append(secs)
            settings = replace(base, workdir=tmp / f"run{i}")
            secs, summary = ingest_once(settings)
            ingest_times.append(secs)
            secs, again = ingest_once(settings)
            rerun_times.append(secs)
            assert all(w["inserted"] == 0 and w["updated"] == 0 for w in again.writes.values())
        from finfeast.offline import open_tables

        bars = open_tables(settings).read("bars")
    rows = sum(s.rows_read for s in summary.sources)
    med_ingest, med_floor = statistics.median(ingest_times), statistics.median(floor_times)
    print("## Ingestion\n")
    print(
        "Machine: 2 cores, 24 GiB; shared with other jobs (1-min load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end): compare ratios within one run."
    )
    print(f"Sources: {', '.join(FILE_SOURCES)}; {rows:,} rows read, {args.repeats} repeats.\n")
    print("| measurement | seconds | rows/s | vs floor |")
    print("|---|---|---|---|")
    print(
        f"| pyarrow floor (read CSV + write Parquet, {floor_rows:,} rows) | {stats(floor_times)} | {floor_rows / med_floor:,.0f} | 1.00x |"
    )
    print(
        f"| `run_ingest` fresh (parse + validate + quarantine + Parquet) | {stats(ingest_times)} | {rows / med_ingest:,.0f} | {med_ingest / med_floor:.2f}x |"
    )
    print(
        f"| `run_ingest` again (idempotent, nothing rewritten) | {stats(rerun_times)} | {rows / statistics.median(rerun_times):,.0f} | {statistics.median(rerun_times) / med_floor:.2f}x |"
    )
    print()
    print("| source | rows read | loaded | quarantined | seconds (last run) |")
    print("|---|---|---|---|---|")
    for s in summary.sources:
        print(
            f"| {s.name} | {s.rows_read:,} | {s.rows_loaded:,} | {s.rows_quarantined:,} | {s.seconds:.2f} |"
        )
    if not args.skip_pg:
        pg = bench_pg(bars, args.repeats)
        n = pg["rows"]
        print()
        print(f"PostgreSQL (`bars`, {n:,} rows, median of {args.repeats}):\n")
        print("| operation | seconds | rows/s |")
        print("|---|---|---|")
        print(
            f"| upsert into a new table (Arrow CSV -> COPY, primary key built afterwards) | {pg['copy_s']:.2f} | {n / pg['copy_s']:,.0f} |"
        )
        print(
            f"| upsert again (COPY to staging + ON CONFLICT merge, 0 changed) | {pg['merge_s']:.2f} | {n / pg['merge_s']:,.0f} |"
        )
        print(f"| read back (COPY TO + Arrow CSV) | {pg['read_s']:.2f} | {n / pg['read_s']:,.0f} |")


if __name__ == "__main__":
    main()
