"""The model-code example runs end to end on real data and prints a probability per symbol."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "online_inference.py"


@pytest.mark.slow
def test_example_trains_and_scores_online_features(data_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--demo",
            "--data-dir",
            str(data_dir),
            "--symbols",
            "AAPL",
            "KO",
            "NOT_A_SYMBOL",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = re.search(r"trained on (\d+) rows x 50 features of px_v1", proc.stdout)
    assert trained and int(trained.group(1)) > 10_000
    scores = dict(re.findall(r"^\s*(AAPL|KO)\s+([0-9.]+)$", proc.stdout, re.M))
    assert set(scores) == {"AAPL", "KO"}
    assert all(0.0 < float(p) < 1.0 for p in scores.values())
    assert "NOT_A_SYMBOL: no complete online feature row" in proc.stdout
