"""Feast's file registry store, returning the same parsed registry while the file is unchanged.

Selected in the `registry:` block of a file registry (Feast accepts a RegistryStore class path):

    registry:
      registry_type: file
      registry_store_type: finfeast.feast_plugins.registry.FinfeastFileRegistryStore
      path: ../var/local/registry.db

Why: Feast caches the objects it builds from the registry (`FeatureView.from_proto`,
`FeatureService.from_proto`, typeguard-checked and slow: ~2 ms for a 50-feature service) by the
identity of the registry proto. `FeatureStore.push` re-reads the registry on every call
(`_precompute_for_push` lists feature services with `allow_cache=False`), and Feast's file store
parses a new proto each time, so every push rebuilds every feature view and feature service of
the project (measured: most of Feast's ~6 ms per push outside the provider, bench_serving.py).

Invalidation is exact, not time-based: the cached proto is returned only when the file's bytes
equal the bytes it was parsed from (or written as) and the proto itself still serializes as it
did then (nobody edited it in place since). Anything else parses the file again, as Feast's
store does; writes go through Feast's `FileRegistryStore` unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto


class FinfeastFileRegistryStore(FileRegistryStore):
    """`FileRegistryStore` whose `get_registry_proto` keeps one parsed proto per file content."""

    def __init__(self, registry_config: Any, repo_path: Path) -> None:
        super().__init__(registry_config, repo_path)
        # (proto, file bytes it stands for, its serialization when handed out); one tuple so a
        # concurrent reader never sees half of an update
        self._cached: tuple[RegistryProto, bytes, bytes] | None = None

    def get_registry_proto(self) -> RegistryProto:
        if not self._filepath.exists():
            self._cached = None
            return super().get_registry_proto()  # Feast's FileNotFoundError
        raw = self._filepath.read_bytes()
        cached = self._cached
        if cached is not None:
            proto, was_raw, serialized = cached
            if raw == was_raw and proto.SerializeToString() == serialized:
                return proto
        proto = RegistryProto()
        proto.ParseFromString(raw)
        self._cached = (proto, raw, proto.SerializeToString())
        return proto

    def update_registry_proto(self, registry_proto: RegistryProto) -> None:
        super().update_registry_proto(registry_proto)
        written = registry_proto.SerializeToString()  # what _write_registry wrote
        self._cached = (registry_proto, written, written)

    def set_project_metadata(self, project: str, key: str, value: str) -> None:
        # Feast edits the proto `get_registry_proto` returns in place: give it its own copy,
        # as Feast's store does, not the one the Registry holds.
        self._cached = None
        super().set_project_metadata(project, key, value)

    def teardown(self) -> None:
        self._cached = None
        super().teardown()
