"""`finfeast features` (compute the catalog into offline tables) and `finfeast select`
(walk-forward feature selection into a versioned FeatureService).

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

    p = sub.add_parser(
        "select",
        parents=[common],
        help="walk-forward feature selection -> FeatureService price_model_v<n> + report",
        description="Walk-forward (expanding window, purged by the label horizon) gradient "
        "boosting with permutation importance per fold; keeps stable, decorrelated features as "
        "the next price_model_v<n> FeatureService, writes a JSON + PNG report comparing against a "
        "naive shuffled split, then runs feast apply.",
    )
    p.add_argument(
        "--horizon", type=int, default=5, choices=(1, 5, 20), help="label horizon in days"
    )
    p.add_argument("--folds", type=int, default=5, help="walk-forward folds (default 5)")
    p.add_argument(
        "--embargo", type=int, default=0, help="extra gap sessions on top of the horizon"
    )
    p.add_argument("--max-features", type=int, default=20, help="at most this many features")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument(
        "--no-apply", action="store_true", help="write the service spec but do not feast apply"
    )
    p.set_defaults(handler=_select)


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


def _select(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.errors import FinfeastError
    from transforms.selection import SelectionConfig, run_selection

    if args.folds < 2:
        raise FinfeastError("--folds must be at least 2")
    symbols = tuple(s.strip() for s in args.symbols.split(",")) if args.symbols else None
    config = SelectionConfig(
        horizon=args.horizon,
        n_folds=args.folds,
        embargo=args.embargo,
        max_features=args.max_features,
        symbols=symbols,
    )
    result = run_selection(settings, config)
    print(result)
    print(f"selected: {', '.join(result.features)}")
    print(f"plot: {result.report_png}")
    if not args.no_apply:
        from finfeast.store import apply_repo

        print(apply_repo(settings))
    return 0
