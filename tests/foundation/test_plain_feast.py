"""Plain `feast` in a copy of feature_repo/ with NOTHING exported, as a user types it.

A tmp clone layout (`<tmp>/feature_repo` + `<tmp>/var`, finfeast's default workdir beside it) with
a small real-data build (packaged indices + LEAN daily equities), then `feast plan`, `apply`,
`materialize-incremental` (the push-fed stream views have no log yet: must not fail) and
`materialize START END` in a subprocess whose environment holds only PATH, HOME and PYTHONPATH
(what the editable install provides in a real clone). The online values read back afterwards
equal the last offline rows (derived here from the Parquet table, not through the plugin).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finfeast.config import REPO_ROOT

SOURCES = ["arch_indices", "lean_daily"]


def _feast(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "PYTHONPATH": str(REPO_ROOT),
    }
    feast = str(Path(sys.executable).parent / "feast")
    return subprocess.run(
        [feast, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_plain_feast_commands_with_nothing_exported(settings_factory, tmp_path: Path) -> None:
    from ingestion import run_ingest
    from transforms.build import build_feature_tables

    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    settings = replace(settings_factory("local", "plain"), workdir=tmp_path / "var", repo_path=repo)
    assert run_ingest(settings, sources=SOURCES, progress=False).status == "ok"
    build_feature_tables(settings)

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for args in (
        ("plan",),
        ("apply",),
        ("materialize-incremental", now),
        ("materialize", "2000-01-01T00:00:00", now),
    ):
        done = _feast(repo, *args)
        assert done.returncode == 0, f"feast {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "var" / "local" / "registry.db").exists()

    from feast import FeatureStore

    offline = pd.read_parquet(
        tmp_path / "var" / "local" / "offline" / "features_daily.parquet",
        columns=["symbol", "event_timestamp", "created_timestamp", "ret_1", "sma_20"],
    )
    last = (
        offline.sort_values(["event_timestamp", "created_timestamp"])
        .groupby("symbol")
        .tail(1)
        .set_index("symbol")
    )
    store = FeatureStore(repo_path=str(repo))
    symbols = ["^GSPC", "AAPL"]
    got = (
        store.get_online_features(
            features=["daily_returns:ret_1", "daily_trend:sma_20"],
            entity_rows=[{"symbol": s} for s in symbols],
        )
        .to_df()
        .set_index("symbol")
    )
    for s in symbols:
        np.testing.assert_allclose(
            got.loc[s, ["ret_1", "sma_20"]].astype(float),
            last.loc[s, ["ret_1", "sma_20"]].astype(float),
            rtol=1e-12,
        )
