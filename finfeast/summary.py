"""The printed summary of `finfeast run`: stages, sources, features, online and training samples."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from finfeast.config import Settings


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    if not rows:
        table.add_column("(none)")
        return table
    for col in rows[0]:
        table.add_column(
            str(col), justify="right" if isinstance(rows[0][col], int | float) else "left"
        )
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _frame(title: str, df: pd.DataFrame, max_cols: int = 10) -> Table:
    shown = df.iloc[:, :max_cols]
    rows = [
        {c: (round(v, 4) if isinstance(v, float) else v) for c, v in rec.items()}
        for rec in shown.to_dict("records")
    ]
    suffix = f" ({df.shape[0]} rows x {df.shape[1]} cols, first {shown.shape[1]} cols shown)"
    return _table(title + suffix, rows)


SIMULATED_SOURCES = frozenset({"trading"})


def _data_kind(row: dict[str, Any]) -> str:
    """Every source is real market data except the simulated trading database: say so."""
    name = str(row.get("source", row.get("name", "")))
    return "SIMULATED" if name in SIMULATED_SOURCES else "real"


def print_summary(
    settings: Settings,
    report: Any,
    ingest: Any = None,
    features: Any = None,
    online: pd.DataFrame | None = None,
    training: pd.DataFrame | None = None,
) -> None:
    console = Console(width=160)
    console.print(
        f"\n[bold]finfeast run[/bold] profile={settings.profile} workdir={settings.profile_dir}"
    )
    console.print(
        _table(
            "Stages",
            [
                {
                    "stage": s.name,
                    "status": s.status,
                    "seconds": round(s.seconds, 2),
                    "detail": s.detail,
                }
                for s in report.stages
            ],
        )
    )
    if ingest is not None:
        rows = [{**row, "data": _data_kind(row)} for row in ingest.to_rows()]
        console.print(_table("Sources (rows read = loaded + quarantined)", rows))
    if features is not None:
        console.print(_table("Features", features.to_rows()))
    if online is not None:
        console.print(_frame("get_online_features(daily_v1)", online))
    if training is not None:
        console.print(_frame("get_historical_features training set (head)", training.head(8)))
