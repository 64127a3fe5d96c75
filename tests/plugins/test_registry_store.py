"""finfeast's file registry store gives Feast the registry Feast's own store would, cached exactly.

Oracle: Feast's `FileRegistryStore` parsing the same file. The cache may only return its proto
while the file holds the bytes it came from and nobody edited the proto in place; every change
(`feast apply` from another store, an in-place edit, a write) must show up as Feast shows it.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.plugins import contract_repo as cr

RUN = uuid.uuid4().hex[:6]


def _stores(root: Path):  # noqa: ANN202
    from feast.infra.registry.file import FileRegistryStore
    from feast.repo_config import RegistryConfig

    from finfeast.feast_plugins.registry import FinfeastFileRegistryStore

    config = RegistryConfig(path=str(root / "registry.db"))
    return FinfeastFileRegistryStore(config, root), FileRegistryStore(config, root)


def _apply_extra_feature(root: Path, project: str) -> None:
    """A schema change applied by another FeatureStore (Feast's own registry store)."""
    from feast import FeatureStore

    other = root / "feature_store_other.yaml"
    other.write_text(cr.yaml_text(root, project, "feast_sqlite", False, None, "local"))
    with contextlib.redirect_stdout(io.StringIO()):
        FeatureStore(repo_path=str(root), fs_yaml_file=other).apply(
            cr.definitions(root, extra_feature=True)
        )


def test_same_proto_until_the_file_or_the_proto_changes(tmp_path) -> None:  # noqa: ANN001
    project = f"rs_{RUN}"
    cr.build(tmp_path, project, "finfeast_sqlite")
    ours, feasts = _stores(tmp_path)
    first = ours.get_registry_proto()
    assert first == feasts.get_registry_proto()
    assert ours.get_registry_proto() is first  # unchanged file: Feast's caches keep hitting

    _apply_extra_feature(tmp_path, project)
    changed = ours.get_registry_proto()
    assert changed is not first and changed == feasts.get_registry_proto()
    assert changed != first

    changed.version_id = "edited in place"  # what Registry.apply_* do before a commit
    fresh = ours.get_registry_proto()
    assert fresh is not changed and fresh == feasts.get_registry_proto()

    fresh.version_id = "written"  # a write goes to the file as Feast's store writes it
    ours.update_registry_proto(fresh)
    assert feasts.get_registry_proto() == fresh
    assert ours.get_registry_proto() is fresh


def test_missing_file_is_feasts_error(tmp_path) -> None:  # noqa: ANN001
    ours, _feasts = _stores(tmp_path)
    with pytest.raises(FileNotFoundError):
        ours.get_registry_proto()


def test_apply_elsewhere_is_seen_by_a_running_store_and_its_pushes(tmp_path, data_dir) -> None:  # noqa: ANN001
    """A FeatureStore on the cached registry sees another process's apply (Feast's mtime rule)."""
    from feast.data_source import PushMode

    project = f"rsa_{RUN}"
    store = cr.build(tmp_path, project, "finfeast_sqlite")
    names = {
        f.name for f in store.get_feature_view(cr.ALL_VIEW, allow_registry_cache=True).features
    }
    assert "open" not in names
    _apply_extra_feature(tmp_path, project)
    view = store.get_feature_view(cr.ALL_VIEW, allow_registry_cache=True)
    assert "open" in {f.name for f in view.features}
    bars = cr.real_bars(data_dir, ["IBM"]).iloc[-1]
    frame = pd.DataFrame(
        [
            {
                "symbol": "IBM",
                "event_timestamp": pd.Timestamp(f"{bars['date']} 21:00", tz="UTC"),
                "close": float(bars["close"]),
                "volume": int(bars["volume"]),
                "up_day": bool(bars["close"] > bars["open"]),
                "name": "IBM",
                "open": float(bars["open"]),
            }
        ]
    )
    store.push("p_all", frame, to=PushMode.ONLINE)
    got = store.get_online_features(
        features=[f"{cr.ALL_VIEW}:open", f"{cr.ALL_VIEW}:close"], entity_rows=[{"symbol": "IBM"}]
    ).to_dict()
    assert got["open"] == [float(bars["open"])] and got["close"] == [float(bars["close"])]
