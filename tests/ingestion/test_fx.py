"""fx: ECB daily and Fed H.10 monthly normalised to (base, quote, rate = quote per 1 base)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from finfeast.offline import open_tables


def _rates(settings) -> pd.DataFrame:
    return open_tables(settings).read("fx_rates")


def test_ecb_rates_match_the_published_reference_rates(full_local, data_dir: Path) -> None:
    """The constructed Frankfurter sample holds the real ECB rates of 2024-07-12 (README §5.2)."""
    settings, _ = full_local
    sample = json.loads(
        (
            data_dir / "api_samples/frankfurter/v1_date_EUR_2024-07-12_all.constructed.json"
        ).read_text()
    )
    fx = _rates(settings)
    day = fx[
        (fx["source"] == "fx:ecb")
        & (fx["event_timestamp"] == pd.Timestamp("2024-07-12 15:00", tz="UTC"))  # 17:00 CEST
    ]
    got = dict(zip(day["quote"], day["rate"], strict=True))
    assert set(day["base"]) == {"EUR"}
    assert got == pytest_approx(sample["rates"])


def pytest_approx(expected: dict[str, float]):  # noqa: ANN201
    import pytest

    return pytest.approx(expected, rel=1e-9)


def test_monthly_file_is_foreign_units_per_usd(full_local) -> None:
    """Data README: every value is foreign currency per 1 USD (Euro 2024-01 0.9175, UK 0.7873)."""
    settings, _ = full_local
    fx = _rates(settings)
    monthly = fx[fx["source"] == "fx:fred_h10_monthly"]
    assert set(monthly["base"]) == {"USD"}
    # the January average comes out in the G.5 of February 1 (Thursday): 17:00 New York
    known = pd.Timestamp("2024-02-01 22:00", tz="UTC")
    row = monthly[monthly["event_timestamp"] == known].set_index("quote")["rate"]
    assert row["EUR"] == 0.9175
    assert row["GBP"] == 0.7873
    # consistent direction with the ECB: EURUSD ~ 1 / (EUR per USD)
    ecb = fx[(fx["source"] == "fx:ecb") & (fx["quote"] == "USD")]
    jan = ecb[(ecb["event_timestamp"] >= "2024-01-01") & (ecb["event_timestamp"] < "2024-02-01")][
        "rate"
    ]
    assert abs(jan.mean() - 1 / row["EUR"]) < 0.01


def test_every_quote_accounted_for(full_local, data_dir: Path) -> None:
    import zipfile

    from ingestion.fx import ecb_zip_path

    settings, summary = full_local
    with zipfile.ZipFile(ecb_zip_path()) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    lines = [ln.split(",") for ln in text.strip().splitlines()[1:]]
    quotes = sum(1 for ln in lines for v in ln[1:] if v.strip() not in ("", "N/A"))
    with open(data_dir / "datasets/exchange-rates/monthly.csv") as fh:
        monthly = sum(1 for _ in fh) - 1
    src = summary.source("fx")
    assert src.rows_read == quotes + monthly
    assert src.rows_loaded + src.rows_quarantined == src.rows_read
    assert len(_rates(settings)) == src.rows_loaded


def test_ecb_matrix_reader_keeps_bad_cells_as_text() -> None:
    from ingestion.fx import _read_ecb_matrix

    good = _read_ecb_matrix(b"Date,USD,JPY,\n2024-01-02,1.1,N/A,\n")
    assert good["USD"].tolist() == [1.1] and good["JPY"].isna().all()
    bad = _read_ecb_matrix(b"Date,USD,JPY,\n2024-01-02,1.1,N/A,\n2024-01-01,oops,150,\n")
    assert bad["USD"].tolist() == ["1.1", "oops"]  # text, so the bad cell is quarantined as read
