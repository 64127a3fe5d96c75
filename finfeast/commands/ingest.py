"""`finfeast ingest`: load and validate the real sources into the offline store of the profile.

Import-light: `ingestion` (pandas, pyarrow) is imported inside the handler only.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from finfeast.config import Settings

SOURCE_NAMES = "stocks_5yr, arch_indices, lean_daily, vix_oil, fx, listings, alphavantage, trading"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="load and validate every source into the offline store (bad rows to quarantine)",
        description="Load the real sources into the canonical offline tables of the profile, "
        "quarantine rows that fail validation, print the per-source summary and write "
        "quality_report.json. Exit code 0 = ok, 4 = partial (a source failed; the others loaded). "
        f"Sources: {SOURCE_NAMES}.",
    )
    p.add_argument("--sources", help="comma-separated source names (default: all)")
    p.add_argument(
        "--data-dir", type=Path, help="the real market-data directory (FINFEAST_DATA_DIR)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the quality report as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from finfeast.errors import FinfeastError, PartialFailure

    if args.data_dir is not None:
        if not args.data_dir.is_dir():
            raise FinfeastError(f"--data-dir {args.data_dir} is not a directory")
        settings = replace(settings, data_dir=args.data_dir.resolve())
    from finfeast.offline import ensure_database
    from ingestion import run_ingest

    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    settings.apply_env()
    ensure_database(settings)
    summary = run_ingest(settings, sources=sources, progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, default=str))
    else:
        from rich.console import Console

        from finfeast.summary import _table

        console = Console(width=180)
        console.print(_table("Sources (rows read = loaded + quarantined)", summary.to_rows()))
        console.print(f"quality report: {summary.report_path}")
        console.print(f"status: {summary.status}")
    return PartialFailure.exit_code if summary.status == "partial" else 0
