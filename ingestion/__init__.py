"""Ingestion: real financial sources -> validated canonical tables, quarantine, quality report.

Public API (the contract other packages use; see docs/architecture.md and docs/ingestion.md):
`run_ingest(settings, sources=None, progress=True) -> IngestSummary`, `SOURCES`,
`IngestSummary`, `SourceResult`. Importing this package is cheap; each source's module (and
pandas work) is imported only when the source runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestion.report import IngestSummary, SourceResult
from ingestion.sources import SOURCES

if TYPE_CHECKING:
    from finfeast.config import Settings


def run_ingest(
    settings: Settings, sources: list[str] | None = None, progress: bool = True
) -> IngestSummary:
    """Load every available source (or the named ones); see `ingestion.runner.run_ingest`."""
    from ingestion.runner import run_ingest as _run

    return _run(settings, sources=sources, progress=progress)


__all__ = ["SOURCES", "IngestSummary", "SourceResult", "run_ingest"]
