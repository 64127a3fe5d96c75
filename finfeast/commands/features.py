"""`finfeast features`: compute the catalog into offline tables (`finfeast select` and
`finfeast versions` live in `finfeast.commands.select`).

Import-light: pandas, scikit-learn, Dask and Feast are imported inside the handlers.
"""

from __future__ import annotations

import argparse

from finfeast.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "features",
        parents=[common],
        help="compute the whole feature catalog into features_daily and labels_daily",
        description="Read the canonical offline tables (bars, and macro / fx_rates / listings "
        "when present), compute every bar-only and market-context feature, and write the wide "
        "features_daily table and the separate labels_daily table.",
    )
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: one process (default); dask: partitioned by symbol on a Dask cluster",
    )
    p.add_argument(
        "--dask-address",
        help="scheduler address for --engine dask (default: FINFEAST_DASK_ADDRESS, "
        "else a LocalCluster started for the run)",
    )
    p.set_defaults(handler=_features)


def _features(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from transforms.build import build_feature_tables

    summary = build_feature_tables(settings, engine=args.engine, dask_address=args.dask_address)
    table = Table(title=str(summary), title_justify="left")
    for col in ("step", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for row in summary.to_rows():
        table.add_row(row["step"], f"{row['seconds']:.2f}", row["detail"])
    Console(width=140).print(table)
    return 0
