"""In-process hot-entity cache with a hard freshness bound (the "tiered cache" in front of Redis).

Why: a few entities (index ETFs, the most traded names) take most reads. Keeping their decoded
rows in process memory saves the Redis round trip and the decoding, but a cached value may be
stale: every entry carries its insertion time and is served only while younger than
`max_age_ms`, so a reader never sees a value older than that bound plus the Redis write lag.
Hits and misses are counted so the hit ratio can be exported as a metric.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class HotEntityCache:
    """LRU map (plan, entity) -> decoded row, each entry valid for `max_age_ms` milliseconds."""

    def __init__(self, max_age_ms: float, max_entries: int = 10_000) -> None:
        if max_age_ms <= 0:
            raise ValueError("max_age_ms must be positive (use no cache instead of a 0 ms bound)")
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_age_s = max_age_ms / 1000.0
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._clock = time.monotonic

    @property
    def max_age_ms(self) -> float:
        return self.max_age_s * 1000.0

    def get(self, key: Hashable) -> Any | None:
        """The cached row, or None when absent or older than the freshness bound."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] <= self.max_age_s:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry[1]
        if entry is not None:
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, row: Any) -> None:
        self._entries[key] = (self._clock(), row)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
