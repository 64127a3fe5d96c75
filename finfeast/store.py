"""Feast store helpers: one place that turns `Settings` into a FeatureStore, applies, materializes.

Why: the CLI, the main job, the stream jobs, notebooks and tests all need the same store for a
profile. `get_store` exports the settings to the environment first (`feature_repo/*.py` reads
FINFEAST_PROFILE / FINFEAST_OFFLINE_DIR, the prod YAML its hosts and secrets), opens Feast on the
YAML resolved for these settings (`Settings.feature_store_yaml`: the repo YAML with this workdir's
project and paths), creates the PostgreSQL database for prod, and caches one store per settings.
`apply_repo` runs Feast's own `apply_total` in-process, after purging previously imported
`feature_repo` modules so a second apply (another profile, a test session) re-reads the env.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError, ServiceUnavailable
from finfeast.offline import ensure_database, open_tables

if TYPE_CHECKING:
    from feast import FeatureStore

_STORES: dict[Settings, FeatureStore] = {}
EPOCH_START = datetime(1970, 1, 2, tzinfo=UTC)


# Set by the CLI: Feast installs "once" warning filters at import, which would re-enable library
# deprecation chatter (ibis/duckdb) in user-facing output; the CLI silences it after the import.
QUIET_LIBRARY_WARNINGS = False


def _quiet_after_feast_import() -> None:
    if QUIET_LIBRARY_WARNINGS:
        import warnings

        import feast  # noqa: F401 - its import installs the filters we override here

        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*experimental feature.*")


def _prepare(settings: Settings) -> None:
    _quiet_after_feast_import()
    settings.apply_env()
    settings.ensure_dirs()
    ensure_database(settings)


def get_store(settings: Settings, fresh: bool = False) -> FeatureStore:
    """The FeatureStore of `settings`' profile (cached per settings unless `fresh`)."""
    if not fresh and settings in _STORES:
        settings.apply_env()
        return _STORES[settings]
    _prepare(settings)
    from feast import FeatureStore

    try:
        store = FeatureStore(
            repo_path=str(settings.repo_path), fs_yaml_file=settings.feature_store_yaml
        )
    except Exception as exc:  # Feast raises many types for config problems
        raise FinfeastError(
            f"cannot open the Feast store ({settings.feature_store_yaml}): {exc}"
        ) from exc
    _STORES[settings] = store
    return store


def _purge_repo_modules(settings: Settings) -> None:
    repo_modules = {p.stem for p in settings.repo_path.glob("*.py")}
    for name in list(sys.modules):
        if name in repo_modules:
            del sys.modules[name]


@dataclass(frozen=True)
class ApplySummary:
    project: str
    entities: int
    feature_views: int
    on_demand_feature_views: int
    feature_services: int

    def __str__(self) -> str:
        return (
            f"applied project {self.project}: {self.entities} entities, {self.feature_views} feature views, "
            f"{self.on_demand_feature_views} on-demand views, {self.feature_services} feature services"
        )


@contextlib.contextmanager
def repo_operation(settings: Settings, verb: str) -> Iterator[tuple[object, io.StringIO]]:
    """Run a Feast repo operation (apply, plan) in-process for the profile.

    Yields the loaded RepoConfig and a buffer capturing Feast's stdout. Feast imports every
    `feature_repo/*.py` and changes directory; this purges previously imported repo modules (so the
    env of these settings is read again), puts the repo on sys.path, and restores the cwd. Feast's
    `sys.exit` on a bad repo becomes a one-line FinfeastError.
    """
    _prepare(settings)
    from feast.repo_config import load_repo_config

    _purge_repo_modules(settings)
    repo = str(settings.repo_path)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    cwd = os.getcwd()
    log = io.StringIO()
    try:
        config = load_repo_config(settings.repo_path, settings.feature_store_yaml)
        with contextlib.redirect_stdout(log):
            yield config, log
    except SystemExit as exc:
        last = log.getvalue().strip().splitlines()[-1:] or ["(no output)"]
        raise FinfeastError(f"feast {verb} failed: {last[0]}") from exc
    except ConnectionError as exc:
        raise ServiceUnavailable(f"feast {verb} could not reach a service: {exc}") from exc
    finally:
        os.chdir(cwd)


def plan_repo(settings: Settings) -> str:
    """`feast plan` for the profile: the registry diff `apply` would make, as text."""
    from feast.repo_operations import plan

    with repo_operation(settings, "plan") as (config, log):
        plan(config, settings.repo_path, skip_source_validation=True)
    return log.getvalue()


def apply_repo(settings: Settings, skip_source_validation: bool = True) -> ApplySummary:
    """`feast apply` for the profile: register every definition in `feature_repo/`."""
    from feast.repo_operations import apply_total

    with repo_operation(settings, "apply") as (config, _log):
        apply_total(config, settings.repo_path, skip_source_validation=skip_source_validation)
    _STORES.pop(settings, None)
    store = get_store(settings)
    return ApplySummary(
        project=settings.project,
        entities=len(store.list_entities()),
        feature_views=len(store.list_feature_views()),
        on_demand_feature_views=len(store.list_on_demand_feature_views()),
        feature_services=len(store.list_feature_services()),
    )


@dataclass(frozen=True)
class MaterializeSummary:
    views: tuple[str, ...]
    start: datetime | None
    end: datetime
    seconds: float
    skipped: tuple[str, ...] = ()
    incremental: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.start:
            span = f"{self.start:%Y-%m-%d}"
        elif self.incremental:
            span = f"{len(self.views) - len(self.incremental)} from history, {len(self.incremental)} incremental"
        else:
            span = "all history"
        text = (
            f"materialized {len(self.views)} views ({span}, up to {self.end:%Y-%m-%d %H:%M})"
            f" in {self.seconds:.1f}s"
        )
        if self.skipped:
            text += f"; skipped (no offline data yet): {', '.join(self.skipped)}"
        return text


def _parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def materialize(
    settings: Settings,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    views: list[str] | None = None,
) -> MaterializeSummary:
    """Load the latest offline values into the online store.

    Without `start`: views never materialized before are loaded from the beginning of history
    (their TTL would otherwise hide years-old market data), the others incrementally.
    """
    import time

    store = get_store(settings)
    end_dt = _parse_time(end) or datetime.now(UTC)
    start_dt = _parse_time(start)
    batch_views = [
        fv
        for fv in store.list_batch_feature_views()
        if fv.online
        and (views is None or fv.name in views)
        and getattr(fv, "stream_source", None) is None  # push-fed views: the stream jobs write them
    ]
    if views:
        missing = set(views) - {fv.name for fv in batch_views}
        if missing:
            raise FinfeastError(
                f"unknown or non-materializable feature views: {', '.join(sorted(missing))}"
            )
    tables = open_tables(settings)
    skipped = tuple(
        fv.name
        for fv in batch_views
        if not _source_exists(fv.batch_source, tables, settings.repo_path)
    )
    batch_views = [fv for fv in batch_views if fv.name not in skipped]
    if skipped:
        logger.warning("materialize: no offline data yet for {}", ", ".join(skipped))
    t0 = time.perf_counter()
    fresh = [fv.name for fv in batch_views if start_dt or not fv.materialization_intervals]
    again = [fv.name for fv in batch_views if fv.name not in fresh]
    with contextlib.redirect_stdout(io.StringIO()):
        if fresh:
            store.materialize(
                start_date=start_dt or EPOCH_START, end_date=end_dt, feature_views=fresh
            )
        if again:
            store.materialize_incremental(end_date=end_dt, feature_views=again)
    return MaterializeSummary(
        tuple(fresh + again), start_dt, end_dt, time.perf_counter() - t0, skipped, tuple(again)
    )


def _source_exists(source: object, tables: object, repo_path: Path) -> bool:
    """Whether a view's batch source has data to read (Parquet file or parts, a PostgreSQL table).

    Only for the summary: the offline plugin reads a missing source as empty anyway.
    """
    path = getattr(source, "path", None)
    if path is not None and type(source).__name__ == "FileSource":
        from finfeast.feast_plugins.offline import scan_target, source_uri

        return scan_target(source_uri(source, repo_path)) is not None  # type: ignore[arg-type]
    # PostgreSQLSource keeps its table behind get_table_query_string(); the source's name is
    # not the table's (e.g. `listings_source` reads table `listings`).
    query = getattr(source, "get_table_query_string", None)
    table = query() if callable(query) else getattr(source, "name", None)
    return bool(table) and tables.exists(str(table).strip('"'))  # type: ignore[attr-defined]
