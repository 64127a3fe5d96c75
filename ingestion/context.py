"""What a source gets to do its work: settings, the data directory, the cache, progress flag."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from finfeast.config import Settings
from finfeast.errors import FinfeastError


@dataclass(frozen=True)
class SourceContext:
    settings: Settings
    progress: bool = True

    @property
    def data_dir(self) -> Path:
        if self.settings.data_dir is None:
            raise FinfeastError("no data directory: set FINFEAST_DATA_DIR or pass --data-dir")
        return Path(self.settings.data_dir)

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    def data_file(self, relative: str, env: str | None = None) -> str:
        """`relative` under the data directory, unless env var `env` names a path or URL."""
        override = os.environ.get(env, "") if env else ""
        return override or str(self.data_dir / relative)
