"""Per-source results, the run summary and the data-quality report (`quality_report.json`).

Why: the summary is the accounting a user checks after every run: for each source, rows read =
rows loaded + rows quarantined, the count per failed rule, and a clear error for a source that
failed while the others loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SourceResult:
    """What one source did in one run. `error` holds the reason for "skipped" or "failed"."""

    name: str
    table: str
    status: str = "ok"  # ok | skipped | failed
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


@dataclass
class IngestSummary:
    """The result of `run_ingest`: "partial" as soon as one source failed."""

    sources: list[SourceResult]
    report_path: Path | None = None
    writes: dict[str, dict[str, int]] = field(default_factory=dict)
    # per source: price basis, knowledge-time rule, simulated flag, caveats (ingestion.sources)
    disclosures: dict[str, dict[str, Any]] = field(default_factory=dict)
    # cross-vendor closes beyond tolerance (also the `vendor_disagreements` table)
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if any(s.status == "failed" for s in self.sources) else "ok"

    def source(self, name: str) -> SourceResult:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_rows(self) -> list[dict[str, Any]]:
        """One printable row per source (the summary table)."""
        return [
            {
                "source": s.name,
                "table": s.table,
                "status": s.status,
                "read": s.rows_read,
                "loaded": s.rows_loaded,
                "quarantined": s.rows_quarantined,
                "rules": ", ".join(f"{k}={v}" for k, v in sorted(s.rules.items())),
                "seconds": round(s.seconds, 2),
                "note": s.error or self._caveat(s.name),
            }
            for s in self.sources
        ]

    def _caveat(self, name: str) -> str:
        d = self.disclosures.get(name, {})
        if d.get("simulated"):
            return "SIMULATED data"
        return "; ".join(str(n) for n in d.get("caveats", ()))[:160]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sources": [{**asdict(s), **self.disclosures.get(s.name, {})} for s in self.sources],
            "writes": self.writes,
            "vendor_disagreements": self.disagreements,
        }

    def __str__(self) -> str:
        loaded = sum(s.rows_loaded for s in self.sources)
        quarantined = sum(s.rows_quarantined for s in self.sources)
        failed = [s.name for s in self.sources if s.status == "failed"]
        text = f"{self.status}: {loaded:,} rows loaded, {quarantined:,} quarantined"
        if self.disagreements:
            text += f", {len(self.disagreements)} vendor disagreements"
        return text + (f"; failed: {', '.join(failed)}" if failed else "")


def write_quality_report(summary: IngestSummary, path: Path, extra: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**extra, **summary.to_json()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path
