"""What a source gets to do its work: settings, the data directory, the cache, progress flag."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from finfeast.config import Settings
from finfeast.errors import FinfeastError

NO_DATA_DIR_HELP = (
    "no data directory: set FINFEAST_DATA_DIR or put the data folder at ../shared/data beside "
    "the repository (origins and checksums: docs/ingestion.md)"
)


class NoDataDirectory(FinfeastError):
    """A source needs files of the data directory and there is none: the source is skipped
    (a fresh clone runs on the data PyPI packages ship), it does not fail the run."""


@dataclass(frozen=True)
class SourceContext:
    settings: Settings
    progress: bool = True

    @property
    def data_dir(self) -> Path:
        if self.settings.data_dir is None:
            raise NoDataDirectory(NO_DATA_DIR_HELP)
        return Path(self.settings.data_dir)

    @property
    def has_data_dir(self) -> bool:
        return self.settings.data_dir is not None

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    def data_file(self, relative: str, env: str | None = None) -> str:
        """`relative` under the data directory, unless env var `env` names a path or URL."""
        override = os.environ.get(env, "") if env else ""
        return override or str(self.data_dir / relative)
