"""The file connector: HTTP(S) download into a checksummed cache, CSV or Parquet, served by a
local HTTP server started by the test (a real slice of all_stocks_5yr)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from finfeast.errors import FinfeastError
from finfeast.offline import open_tables
from ingestion import files, run_ingest

N_ROWS = 5_000


@pytest.fixture
def served(file_server, data_dir: Path):
    """all_stocks_5yr's first rows as .csv.gz and .parquet on the local server."""
    with gzip.open(data_dir / "daily/all_stocks_5yr.csv.gz", "rt") as fh:
        lines = [next(fh) for _ in range(N_ROWS + 1)]
    (file_server.root / "stocks.csv.gz").write_bytes(gzip.compress("".join(lines).encode()))
    frame = pd.read_csv(file_server.root / "stocks.csv.gz")
    frame.to_parquet(file_server.root / "stocks.parquet", index=False)
    return file_server


def test_download_is_cached_and_checksummed(served, tmp_path: Path) -> None:
    url = f"{served.url}/stocks.csv.gz"
    expected = hashlib.sha256((served.root / "stocks.csv.gz").read_bytes()).hexdigest()
    path = files.download(url, tmp_path, sha256=expected)
    assert files.sha256_file(path) == expected
    assert files.download(url, tmp_path, sha256=expected) == path
    assert served.requests["stocks.csv.gz"] == 1  # second call: cache hit
    path.write_bytes(b"corrupted")
    assert files.sha256_file(files.download(url, tmp_path)) == expected
    assert served.requests["stocks.csv.gz"] == 2  # a corrupted cache copy is fetched again


def test_checksum_mismatch_and_http_errors(served, tmp_path: Path) -> None:
    with pytest.raises(FinfeastError, match="checksum mismatch"):
        files.download(f"{served.url}/stocks.csv.gz", tmp_path, sha256="0" * 64)
    assert not any(tmp_path.glob("*stocks*"))  # nothing half-written kept
    with pytest.raises(FinfeastError, match="HTTP 404"):
        files.download(f"{served.url}/nope.csv", tmp_path)
    with pytest.raises(FinfeastError, match="download of http://127.0.0.1:9"):
        files.download("http://127.0.0.1:9/x.csv", tmp_path, timeout=1)


@pytest.mark.parametrize("name", ["stocks.csv.gz", "stocks.parquet"])
def test_stocks_source_reads_a_url(served, name: str, settings_factory, monkeypatch) -> None:
    monkeypatch.setenv("FINFEAST_STOCKS_5YR_URL", f"{served.url}/{name}")
    settings = settings_factory("local", f"url_{name.split('.')[-1]}")
    src = run_ingest(settings, sources=["stocks_5yr"], progress=False).source("stocks_5yr")
    assert src.status == "ok", src.error
    assert src.rows_read == N_ROWS
    assert src.rows_loaded + src.rows_quarantined == N_ROWS
    bars = open_tables(settings).read("bars")
    assert len(bars) == src.rows_loaded
    assert served.requests[name] == 1
    assert any(settings.cache_dir.rglob(f"*{name}.sha256"))
