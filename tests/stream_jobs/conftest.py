"""Fixtures of the stream tests: own broker, applied stores per profile, a private redis-server.

The stream tests start their own Tansu broker (module scope) rather than the shared session broker,
so their topics (`market.bars`, `trades`, ...) never see another area's messages. Applied stores
are session-scoped: `feast apply` costs ~10 s per profile.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finfeast.config import Settings

ROOT_CONFTEST = str(Path(__file__).resolve().parents[1] / "conftest.py")


def root_helpers(config: pytest.Config):  # noqa: ANN201 - the lead's conftest module
    """The lead's tests/conftest.py (free_port, port_open, unavailable: skip locally, fail in CI)."""
    module = config.pluginmanager.get_plugin(ROOT_CONFTEST)
    assert module is not None, f"{ROOT_CONFTEST} is not loaded"
    return module


@pytest.fixture(scope="session")
def helpers(pytestconfig: pytest.Config):  # noqa: ANN201
    return root_helpers(pytestconfig)


@pytest.fixture(scope="module")
def broker(helpers) -> Iterator[str]:
    from finfeast.errors import ServiceUnavailable
    from stream_jobs.broker import EmbeddedBroker

    try:
        b = EmbeddedBroker().start()
    except ServiceUnavailable as exc:
        helpers.unavailable(str(exc))
    yield b.bootstrap
    b.stop()


@pytest.fixture
def fresh_broker(helpers) -> Iterator[str]:
    """A broker for one test: its topics hold only that test's messages."""
    from finfeast.errors import ServiceUnavailable
    from stream_jobs.broker import EmbeddedBroker

    try:
        b = EmbeddedBroker().start()
    except ServiceUnavailable as exc:
        helpers.unavailable(str(exc))
    yield b.bootstrap
    b.stop()


@pytest.fixture(scope="session")
def stream_local(settings_factory) -> Settings:
    from finfeast.store import apply_repo

    settings = settings_factory("local", "stream_l")
    apply_repo(settings)
    return settings


@pytest.fixture(scope="session")
def stream_prod(settings_factory) -> Settings:
    from finfeast.store import apply_repo

    settings = settings_factory("prod", "stream_p")
    apply_repo(settings)
    return settings


class RedisServer:
    """A private redis-server on a free port, stopped and restarted by PID (never the shared one)."""

    def __init__(self, workdir: Path, helpers) -> None:  # noqa: ANN001
        binary = shutil.which("redis-server")
        if not binary:
            helpers.unavailable("redis-server is not installed")
        self.binary = binary
        self.port_open = helpers.port_open
        self.port = helpers.free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not self.port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path, helpers) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, helpers)
    server.start()
    yield server
    server.stop()
