"""Source `alphavantage`: daily bars and daily FX from the Alpha Vantage API -> `bars`, `fx_rates`.

Provenance: Alpha Vantage REST API (https://www.alphavantage.co, terms of service apply; free key).
Without ALPHAVANTAGE_API_KEY the source is reported "skipped: no key" and loads nothing: it never
fakes data. Settings: ALPHAVANTAGE_SYMBOLS (default "MSFT"), ALPHAVANTAGE_FX (default
"EUR/USD"), ALPHAVANTAGE_OUTPUTSIZE (compact|full), ALPHAVANTAGE_BASE_URL (tests point it at a local
server replaying recorded responses), plus the client settings in `alphavantage_client`.

Timestamps: a daily bar (TIME_SERIES_DAILY, price basis `as_traded`: the unadjusted series) is
known at the actual XNYS close of its session (`finfeast.sessions`, early closes included); an
FX daily bar dated D (in the Meta Data time zone, e.g. GMT+8) is known at the end of D in that
zone. The FX `rate` is the day's close. A symbol another, higher-priority bar source holds is
that source's (one source per symbol): these rows are then compared and superseded.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ingestion.alphavantage_client import AlphaVantageClient, ClientConfig, timezone_name
from ingestion.batch import Batch
from ingestion.coerce import to_float
from ingestion.context import SourceContext
from ingestion.daily_bars import bars_batch
from ingestion.lean_daily import ETFS
from ingestion.rules import ohlc, positive, required
from ingestion.timestamps import local_time_utc

NO_KEY = "skipped: no key (set ALPHAVANTAGE_API_KEY)"


def _list(name: str, default: str) -> list[str]:
    return [s.strip() for s in (os.environ.get(name) or default).split(",") if s.strip()]


def skip_reason(ctx: SourceContext) -> str | None:
    return None if os.environ.get("ALPHAVANTAGE_API_KEY") else NO_KEY


def _bars(client: AlphaVantageClient, symbols: list[str], size: str) -> Batch:
    frames = []
    for symbol in symbols:
        _, rows = client.daily(symbol, outputsize=size)
        frames.append(rows.assign(symbol=symbol.upper()))
    raw = pd.concat(frames, ignore_index=True)
    asset_class = np.where(raw["symbol"].isin(ETFS), "etf", "equity")
    prices = {c: c for c in ("open", "high", "low", "close", "volume")}
    return bars_batch(raw, raw["symbol"], raw["timestamp"], prices, asset_class)


def _fx(client: AlphaVantageClient, pairs: list[str], size: str) -> Batch:
    frames = []
    for pair in pairs:
        base, _, quote = pair.upper().partition("/")
        meta, rows = client.fx_daily(base, quote, outputsize=size)
        zone = timezone_name(meta.get("time_zone", "UTC"))
        known = local_time_utc(rows["timestamp"], 24, 0, zone, fmt="%Y-%m-%d")
        frames.append(rows.assign(base=base, quote=quote, _known=known.to_numpy()))
    raw = pd.concat(frames, ignore_index=True)
    frame = pd.DataFrame(
        {
            "base": raw["base"],
            "quote": raw["quote"],
            **{c: to_float(raw[c]) for c in ("open", "high", "low", "close")},
            "event_timestamp": raw["_known"],
        },
        index=raw.index,
    )
    frame["rate"] = frame["close"]
    rules = [
        required(["base", "quote", "open", "high", "low", "close", "event_timestamp"]),
        positive(["open", "high", "low", "close"], "rate_not_positive"),
        *ohlc(),
    ]
    return Batch("fx_rates", frame, raw.drop(columns="_known"), rules)


def extract(ctx: SourceContext) -> list[Batch]:
    client = AlphaVantageClient(ClientConfig.from_env(ctx.cache_dir / "alphavantage"))
    size = os.environ.get("ALPHAVANTAGE_OUTPUTSIZE") or "compact"
    batches = []
    symbols = _list("ALPHAVANTAGE_SYMBOLS", "MSFT")
    if symbols:
        batches.append(_bars(client, symbols, size))
    pairs = _list("ALPHAVANTAGE_FX", "EUR/USD")
    if pairs:
        batches.append(_fx(client, pairs, size))
    return batches
