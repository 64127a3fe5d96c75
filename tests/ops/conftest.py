"""Fixtures of the ops tests: system programs, an applied registry, the feast UI server.

The root tests/conftest.py (lead) decides skip-vs-fail for missing services; its module is reached
through pytest's plugin manager because this directory's conftest shadows the name `conftest`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from finfeast.config import Settings
from finfeast.processes import stop_process_group


@pytest.fixture(scope="session")
def root_conftest(request: pytest.FixtureRequest) -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    module = request.config.pluginmanager.get_plugin(str(path))
    assert module is not None, f"root conftest not loaded from {path}"
    return module


@pytest.fixture(scope="session")
def program(root_conftest: ModuleType) -> Callable[[str], str]:
    """`program("chromium")` -> its path; skips locally / fails in CI when it is not installed."""
    return root_conftest.which_or_unavailable


@pytest.fixture(scope="session")
def applied_local(
    root_conftest: ModuleType, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Settings:
    """The project's real feature repo applied into a fresh local-profile registry.

    The local profile keeps everything under its tmp workdir, so the real project name is safe
    here (and is what the UI screenshot shows).
    """
    from finfeast.store import apply_repo

    workdir = tmp_path_factory.mktemp("local_ops")
    settings = root_conftest.make_settings(workdir, data_dir, "local", project="finfeast")
    summary = apply_repo(settings)
    assert summary.feature_views > 0
    return settings


@pytest.fixture(scope="session")
def feast_ui(
    applied_local: Settings,
    root_conftest: ModuleType,
    tmp_path_factory: pytest.TempPathFactory,
    program: Callable[[str], str],
) -> Iterator[str]:
    """`feast ui` over the applied registry on a free loopback port; yields its base URL."""
    feast_bin = str(Path(sys.executable).parent / "feast")  # the venv's console script
    port = root_conftest.free_port()
    log = tmp_path_factory.mktemp("feast_ui") / "ui.log"
    env = {**os.environ, **applied_local.env()}
    cmd = [
        feast_bin,
        "-c",
        str(applied_local.repo_path),
        "-f",
        str(applied_local.feature_store_yaml),
        "ui",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 90
    while not root_conftest.port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process_group(proc)
            pytest.fail(f"feast ui did not start: {log.read_text()[-1500:]}")
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    stop_process_group(proc)
