"""Serving fixtures: a real-price Feast repo on the real Redis, and a running feature server.

One repo per test session (own Feast project, own temp dir; Redis keys removed at the end), built
from a slice of the real S&P 500 daily file. The server fixture runs `finfeast serve` as a
subprocess on a free loopback port, exactly as a user would, and stops it by PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finfeast.processes import stop_process_group

ROOT_CONFTEST = str(Path(__file__).resolve().parents[1] / "conftest.py")
SYMBOLS = ["AAPL", "IBM", "MSFT", "BAC", "AIG", "JPM", "XOM", "GE", "APTV", "DWDP", "BHF", "T"]


def root(config: pytest.Config):  # noqa: ANN201 - the lead's tests/conftest.py module
    module = config.pluginmanager.get_plugin(ROOT_CONFTEST)
    assert module is not None, f"{ROOT_CONFTEST} is not loaded"
    return module


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def price_repo(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, pytestconfig: pytest.Config
) -> Iterator:
    helpers = root(pytestconfig)
    helpers.require_service("redis")
    from bench.price_repo import build_price_repo, drop_online_keys

    repo = build_price_repo(
        tmp_path_factory.mktemp("price_repo"),
        data_dir,
        project=f"srv_{helpers.SESSION_ID}",
        online="finfeast_redis",
        symbols=SYMBOLS,
    )
    yield repo
    drop_online_keys(repo)


@pytest.fixture(scope="session")
def price_store(price_repo):
    return price_repo.store()


class RunningServer:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"


def start_finfeast_server(
    yaml: Path | None, log: Path, *extra: str, env: dict[str, str] | None = None
) -> RunningServer:
    """`finfeast [extra...] serve` on a free port (another repo with `yaml`); waits for /health."""
    import requests

    port = free_port()
    target = ["--feature-store-yaml", str(yaml)] if yaml else []
    out = open(log, "wb")  # noqa: SIM115 - closed when the process ends
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "finfeast.cli",
            *extra,
            "serve",
            *target,
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-flush-seconds",
            "0.5",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return RunningServer(proc, port, log)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"server not healthy: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    stop_process_group(proc, timeout=30)


@pytest.fixture(scope="module")
def server(price_repo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_finfeast_server(
        price_repo.yaml, tmp_path_factory.mktemp("server") / "server.log"
    )
    yield running
    stop_server(running.proc)


@pytest.fixture(scope="session")
def server_control():
    """(start, stop) helpers for tests that run their own `finfeast serve`."""
    return start_finfeast_server, stop_server
