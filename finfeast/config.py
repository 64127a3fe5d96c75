"""Settings and profiles, read from environment variables with documented defaults.

Why one module: the Feast YAML files, `feature_repo/*.py` (imported by `feast apply`), the CLI and
the tests must all agree on paths and connections. Everything is derived here from a handful of
`FINFEAST_*` variables. The local YAML in `feature_repo/` is literal (finfeast's default workdir,
paths relative to the repo), so plain `feast` there needs nothing exported; for any Settings,
`Settings.feature_store_yaml` is that YAML resolved for them (project, workdir paths) under the
profile dir, and `Settings.apply_env` exports what `feature_repo/*.py` and the prod YAML read
(`eval "$(finfeast env)"` does the same for a shell).

| variable | default | meaning |
|---|---|---|
| FINFEAST_PROFILE | local | `local` (Parquet + DuckDB, SQLite, file registry) or `prod` (PostgreSQL, Redis, SQL registry) |
| FINFEAST_WORKDIR | <repo>/var | generated data, stores and reports (git-ignored); one sub-folder per profile |
| FINFEAST_DATA_DIR | ../shared/data when it exists | the real market-data directory (`none`: no data directory, as on a fresh clone) |
| FINFEAST_PROJECT | finfeast | Feast project name (also the Redis key namespace) |
| FINFEAST_PG_HOST / _PORT / _USER / _PASSWORD / _DB | 127.0.0.1 / 5432 / postgres / "" / finfeast | PostgreSQL (prod) |
| FINFEAST_PG_SSLMODE | prefer | libpq sslmode for Feast's PostgreSQL connections |
| FINFEAST_REDIS_HOST / _PORT / _DB / _PASSWORD | 127.0.0.1 / 6379 / 0 / "" | Redis online store (prod) |
| FINFEAST_KAFKA_BOOTSTRAP | "" (start the embedded broker) | Kafka bootstrap servers |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote_plus

from finfeast.errors import FinfeastError

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("local", "prod")


def _default_data_dir() -> Path | None:
    candidate = REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class Settings:
    """Everything that differs between machines, profiles and test sessions."""

    profile: str = "local"
    workdir: Path = REPO_ROOT / "var"
    data_dir: Path | None = field(default_factory=_default_data_dir)
    project: str = "finfeast"
    repo_path: Path = REPO_ROOT / "feature_repo"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = ""
    pg_db: str = "finfeast"
    pg_sslmode: str = "prefer"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str = ""
    kafka_bootstrap: str = ""

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise FinfeastError(
                f"unknown profile {self.profile!r}: choose one of {', '.join(PROFILES)}"
            )

    # ---- derived paths -------------------------------------------------------------------
    @property
    def profile_dir(self) -> Path:
        return self.workdir / self.profile

    @property
    def offline_dir(self) -> Path:
        """Parquet offline tables (local profile; prod keeps Parquet for logs it must own)."""
        return self.profile_dir / "offline"

    @property
    def reports_dir(self) -> Path:
        return self.profile_dir / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "cache"

    @property
    def registry_path(self) -> Path:
        return self.profile_dir / "registry.db"

    @property
    def online_path(self) -> Path:
        return self.profile_dir / "online.db"

    @property
    def repo_yaml(self) -> Path:
        """The profile's YAML in `feature_repo/` (what plain `feast` reads; defaults literal)."""
        name = "feature_store.yaml" if self.profile == "local" else "feature_store_prod.yaml"
        return self.repo_path / name

    @property
    def feature_store_yaml(self) -> Path:
        """The profile's YAML resolved for THESE settings (project, local paths), under the
        profile dir: `FeatureStore(fs_yaml_file=...)`, `feast -c <repo> -f <this>` and `feast
        serve` subprocesses of tests and tools then use this workdir, not the repo defaults."""
        return write_feature_store_yaml(self)

    # ---- connections ---------------------------------------------------------------------
    @property
    def pg_sqlalchemy_url(self) -> str:
        auth = quote_plus(self.pg_user)
        if self.pg_password:
            auth += ":" + quote_plus(self.pg_password)
        return f"postgresql+psycopg://{auth}@{self.pg_host}:{self.pg_port}/{self.pg_db}"

    @property
    def pg_dsn(self) -> str:
        """libpq DSN for psycopg (COPY paths)."""
        parts = [
            f"host={self.pg_host}",
            f"port={self.pg_port}",
            f"user={self.pg_user}",
            f"dbname={self.pg_db}",
        ]
        if self.pg_password:
            parts.append(f"password={self.pg_password}")
        return " ".join(parts)

    @property
    def redis_connection_string(self) -> str:
        s = f"{self.redis_host}:{self.redis_port},db={self.redis_db}"
        if self.redis_password:
            s += f",password={self.redis_password}"
        return s

    def with_profile(self, profile: str) -> Settings:
        return replace(self, profile=profile)

    # ---- environment ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables read by the Feast YAML files and `feature_repo/*.py`."""
        return {
            "FINFEAST_PROFILE": self.profile,
            "FINFEAST_WORKDIR": str(self.workdir),
            "FINFEAST_DATA_DIR": str(self.data_dir or ""),
            "FINFEAST_PROJECT": self.project,
            "FINFEAST_OFFLINE_DIR": str(self.offline_dir),
            "FINFEAST_REGISTRY_PATH": str(self.registry_path),
            "FINFEAST_ONLINE_PATH": str(self.online_path),
            "FINFEAST_REGISTRY_URL": self.pg_sqlalchemy_url,
            "FINFEAST_PG_HOST": self.pg_host,
            "FINFEAST_PG_PORT": str(self.pg_port),
            "FINFEAST_PG_USER": self.pg_user,
            "FINFEAST_PG_PASSWORD": self.pg_password,
            "FINFEAST_PG_DB": self.pg_db,
            "FINFEAST_PG_SSLMODE": self.pg_sslmode,
            "FINFEAST_REDIS_HOST": self.redis_host,
            "FINFEAST_REDIS_PORT": str(self.redis_port),
            "FINFEAST_REDIS_DB": str(self.redis_db),
            "FINFEAST_REDIS_PASSWORD": self.redis_password,
            "FINFEAST_REDIS_CONN": self.redis_connection_string,
            "FINFEAST_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }

    def apply_env(self) -> None:
        """Export `env()` so Feast (YAML expansion, repo imports) sees these settings."""
        os.environ.update(self.env())

    def ensure_dirs(self) -> None:
        for d in (self.offline_dir, self.reports_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)


def feature_store_text(settings: Settings) -> str:
    """The repo YAML of the profile with these settings' project and local paths, as text.

    Only what differs between finfeast workdirs is replaced: the top-level `project:` and, on the
    local profile, `path:` of the `registry:` and `online_store:` blocks (absolute). Edited line
    by line, so everything else keeps its exact spelling: `${FINFEAST_*}` placeholders (prod hosts
    and secrets, some quoted so an empty password stays a string) are expanded by Feast from the
    environment `apply_env` exports.
    """
    paths = {"registry": settings.registry_path, "online_store": settings.online_path}
    block = ""
    out = []
    for line in settings.repo_yaml.read_text().splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not stripped.startswith("#"):
            block = stripped.split(":", 1)[0]
            if block == "project":
                line = f"project: {settings.project}"
            elif block == "registry" and settings.profile == "local" and stripped != "registry:":
                line = f"registry: {settings.registry_path}"  # the short form `registry: <path>`
        elif settings.profile == "local" and block in paths and stripped.startswith("path:"):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}path: {paths[block]}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_feature_store_yaml(settings: Settings) -> Path:
    """Write `feature_store_text(settings)` to `<profile_dir>/feature_store.yaml` (if changed)."""
    path = settings.profile_dir / "feature_store.yaml"
    text = (
        f"# Generated by finfeast from {settings.repo_yaml} for workdir {settings.workdir}.\n"
        + feature_store_text(settings)
    )
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise FinfeastError(f"{name} must be an integer, got {raw!r}") from exc


def load_settings(profile: str | None = None, **overrides: object) -> Settings:
    """Settings from the environment; `profile` (the `--profile` flag) wins over FINFEAST_PROFILE."""
    env = os.environ
    data_dir_raw = env.get("FINFEAST_DATA_DIR", "")
    if data_dir_raw.strip().lower() == "none":  # run as a fresh clone would, even beside data
        data_dir = None
    elif data_dir_raw:
        data_dir = Path(data_dir_raw).expanduser().resolve()
    else:
        data_dir = _default_data_dir()
    values: dict[str, object] = dict(
        profile=profile or env.get("FINFEAST_PROFILE", "local") or "local",
        workdir=Path(env.get("FINFEAST_WORKDIR") or REPO_ROOT / "var").expanduser().resolve(),
        data_dir=data_dir,
        project=env.get("FINFEAST_PROJECT", "finfeast") or "finfeast",
        repo_path=Path(env.get("FINFEAST_REPO_PATH") or REPO_ROOT / "feature_repo").resolve(),
        pg_host=env.get("FINFEAST_PG_HOST", "127.0.0.1") or "127.0.0.1",
        pg_port=_int("FINFEAST_PG_PORT", 5432),
        pg_user=env.get("FINFEAST_PG_USER", "postgres") or "postgres",
        pg_password=env.get("FINFEAST_PG_PASSWORD", ""),
        pg_db=env.get("FINFEAST_PG_DB", "finfeast") or "finfeast",
        pg_sslmode=env.get("FINFEAST_PG_SSLMODE", "prefer") or "prefer",
        redis_host=env.get("FINFEAST_REDIS_HOST", "127.0.0.1") or "127.0.0.1",
        redis_port=_int("FINFEAST_REDIS_PORT", 6379),
        redis_db=_int("FINFEAST_REDIS_DB", 0),
        redis_password=env.get("FINFEAST_REDIS_PASSWORD", ""),
        kafka_bootstrap=env.get("FINFEAST_KAFKA_BOOTSTRAP", ""),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["data_dir"] is not None and not Path(str(values["data_dir"])).is_dir():
        raise FinfeastError(f"FINFEAST_DATA_DIR {values['data_dir']} is not a directory")
    return Settings(**values)  # type: ignore[arg-type]
