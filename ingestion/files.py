"""The file connector: a local path or an HTTP(S) URL -> a verified local file -> an Arrow table.

Why: file sources are read the same way whether the file sits in the data directory or on a web
server. A URL is downloaded once into the cache (streamed to a temp file, SHA-256 computed on the
way, renamed into place); the checksum is kept next to it and checked on every reuse, and an
expected checksum, when given, must match. CSV (optionally .gz) and Parquet are read with
pyarrow; rows with the wrong number of fields are handed back as `malformed` lines, not lost.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from loguru import logger

from finfeast.errors import FinfeastError

_URL = re.compile(r"^https?://", re.IGNORECASE)
_CHUNK = 1 << 20


def is_url(location: str | Path) -> bool:
    return bool(_URL.match(str(location)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_name(url: str) -> str:
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}_{tail or 'download'}"


def download(url: str, cache_dir: Path, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download `url` into `cache_dir` unless a verified copy is there; returns the local path."""
    import requests

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / _cache_name(url)
    sidecar = target.with_name(target.name + ".sha256")
    if target.exists() and sidecar.exists():
        recorded = sidecar.read_text().strip()
        if sha256_file(target) == recorded and (sha256 is None or recorded == sha256.lower()):
            logger.info("file connector: cache hit {} ({})", url, target.name)
            return target
        logger.warning("file connector: cached copy of {} failed its checksum, downloading", url)
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise FinfeastError(f"download of {url} failed: HTTP {resp.status_code}")
            with open(tmp, "wb") as out:
                for chunk in resp.iter_content(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    except requests.RequestException as exc:
        tmp.unlink(missing_ok=True)
        raise FinfeastError(f"download of {url} failed: {type(exc).__name__}: {exc}") from exc
    got = digest.hexdigest()
    if sha256 is not None and got != sha256.lower():
        tmp.unlink(missing_ok=True)
        raise FinfeastError(f"download of {url}: checksum mismatch (expected {sha256}, got {got})")
    tmp.replace(target)
    sidecar.write_text(got + "\n")
    logger.info(
        "file connector: downloaded {} ({} bytes, sha256 {})", url, target.stat().st_size, got[:12]
    )
    return target


def resolve(location: str | Path, cache_dir: Path, sha256: str | None = None) -> Path:
    """A readable local file for `location` (a path, or a URL fetched through the cache)."""
    if is_url(location):
        return download(str(location), cache_dir, sha256)
    path = Path(location)
    if not path.is_file():
        raise FinfeastError(f"input file not found: {path}")
    if sha256 is not None and sha256_file(path) != sha256.lower():
        raise FinfeastError(f"input file {path}: checksum mismatch (expected {sha256})")
    return path


@dataclass
class FileRead:
    """An Arrow table read from a file plus the lines that could not be parsed into rows."""

    table: pa.Table
    malformed: list[str] = field(default_factory=list)


def read_table(
    path: Path,
    column_types: dict[str, pa.DataType] | None = None,
    required: tuple[str, ...] = (),
) -> FileRead:
    """Read CSV (.csv, .csv.gz) or Parquet. Missing `required` columns is an error for the file.

    Values that do not parse as their declared type do not fail the file: the CSV is read again
    with those columns as strings, and the source maps unparseable values to null (quarantined
    under `required_fields` with the original text).
    """
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FinfeastError(f"{path}: not a readable Parquet file ({exc})") from exc
        _require(path, table.column_names, required)
        return FileRead(table)
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise FinfeastError(f"{path}: unsupported file type (expected .csv, .csv.gz or .parquet)")
    malformed: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append(row.text)
        return "skip"

    parse = pacsv.ParseOptions(invalid_row_handler=on_invalid)
    types = dict(column_types or {})
    try:
        header = _header(path)
        _require(path, header, required)
        types = {k: v for k, v in types.items() if k in header}
        try:
            table = pacsv.read_csv(
                path, parse_options=parse, convert_options=pacsv.ConvertOptions(column_types=types)
            )
        except pa.ArrowInvalid as exc:
            if "CSV conversion error" not in str(exc):
                raise
            malformed.clear()
            as_text = {k: pa.string() for k in types}
            table = pacsv.read_csv(
                path,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(column_types=as_text),
            )
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as exc:
        raise FinfeastError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    return FileRead(table, malformed)


def _header(path: Path) -> list[str]:
    opener = __import__("gzip").open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        line = fh.readline()
    if not line.strip():
        raise FinfeastError(f"{path}: empty file (no header line)")
    import csv

    return next(csv.reader([line]))


def _require(path: Path, columns: list[str], required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise FinfeastError(
            f"{path}: malformed input, missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(columns[:12])})"
        )
