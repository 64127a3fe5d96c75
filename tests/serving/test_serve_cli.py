"""`finfeast serve / monitor / audit` from the command line: help, one-line errors, report files."""

from __future__ import annotations

import json
import subprocess
import sys


def _finfeast(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finfeast.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_help_lists_tuning_flags() -> None:
    proc = _finfeast("serve", "--help", timeout=60)
    assert proc.returncode == 0
    for flag in ("--workers", "--keep-alive", "--max-requests", "--registry-ttl"):
        assert flag in proc.stdout, flag


def test_bad_serve_options_are_one_line_errors(tmp_path) -> None:
    proc = _finfeast("serve", "--workers", "0", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "finfeast: error: --workers must be at least 1"
    missing = _finfeast("serve", "--feature-store-yaml", str(tmp_path / "nope.yaml"), timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_monitor_and_audit_write_reports(price_repo, tmp_path) -> None:
    yaml = str(price_repo.yaml)
    mon = _finfeast(
        "monitor", "--feature-store-yaml", yaml, "--view", "px_returns", "--out", str(tmp_path)
    )
    assert mon.returncode == 0, mon.stderr
    assert "px_returns" in mon.stdout
    report = json.loads((tmp_path / "data_quality.json").read_text())
    assert [v["view"] for v in report["views"]] == ["px_returns"]
    assert len(report["views"][0]["features"]) == 25

    audit = _finfeast(
        "audit",
        "--feature-store-yaml",
        yaml,
        "--service",
        "px_v1",
        "--hours",
        "1",
        "--out",
        str(tmp_path),
    )
    assert audit.returncode == 0, audit.stderr
    assert "audit of px_v1 serving logs" in audit.stdout
    assert (tmp_path / "serving_audit_px_v1.json").exists()

    no_logging = _finfeast(
        "audit", "--feature-store-yaml", yaml, "--service", "nope", "--out", str(tmp_path)
    )
    assert no_logging.returncode == 2
    assert "Feature service nope does not exist" in no_logging.stderr
    assert "Traceback" not in no_logging.stderr
