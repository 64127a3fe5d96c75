"""`feast ui` over the project's real registry, rendered by headless Chromium (Debian `chromium`).

The UI is a React app: the initial HTML holds no feature view names, so finding them proves the
page really rendered the registry. The feature view screenshot is saved with the test's files
(and into docs/img/feast_ui.png when FINFEAST_UPDATE_DOCS_IMG=1, how the committed one was made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from finfeast.config import REPO_ROOT
from finfeast.store import get_store

DOCS_IMAGE = REPO_ROOT / "docs" / "img" / "feast_ui.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Chromium as these machines allow it (no sandbox, no GPU, no network side traffic).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium(program, tmp_path_factory: pytest.TempPathFactory):
    """Run Chromium headless with a throwaway profile; returns a callable(url, *extra) -> stdout."""
    binary = program("chromium")
    profile = tmp_path_factory.mktemp("chromium_profile")

    def run(url: str, *extra: str) -> str:
        out = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    return run


@pytest.fixture(scope="module")
def registry_names(applied_local) -> dict[str, list[str]]:
    store = get_store(applied_local)
    return {
        "feature_views": sorted(v.name for v in store.list_all_feature_views()),
        "entities": sorted(e.name for e in store.list_entities()),
        "feature_services": sorted(s.name for s in store.list_feature_services()),
    }


def test_initial_html_has_no_registry_content(feast_ui: str, registry_names) -> None:
    """Control: the names only appear once React has rendered the registry."""
    html = urllib.request.urlopen(feast_ui, timeout=10).read().decode()
    assert '<div id="root"' in html or "id=root" in html
    assert not any(name in html for name in registry_names["feature_views"])


def test_feature_view_page_lists_every_feature_view(
    feast_ui: str, applied_local, registry_names, chromium
) -> None:
    dom = chromium(f"{feast_ui}/p/{applied_local.project}/feature-view", "--dump-dom")
    missing = [n for n in registry_names["feature_views"] if n not in dom]
    assert registry_names["feature_views"], "nothing applied?"
    assert not missing, f"feature views not rendered: {missing}"


@pytest.mark.parametrize(
    ("page", "kind"), [("entity", "entities"), ("feature-service", "feature_services")]
)
def test_entity_and_feature_service_pages(
    feast_ui: str, applied_local, registry_names, chromium, page: str, kind: str
) -> None:
    dom = chromium(f"{feast_ui}/p/{applied_local.project}/{page}", "--dump-dom")
    assert registry_names[kind]
    assert all(name in dom for name in registry_names[kind]), (kind, registry_names[kind])


def test_screenshot_of_the_feature_views(
    feast_ui: str, applied_local, chromium, tmp_path: Path
) -> None:
    shot = tmp_path / "feast_ui.png"
    chromium(
        f"{feast_ui}/p/{applied_local.project}/feature-view",
        "--window-size=1400,900",
        f"--screenshot={shot}",
    )
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 900)
    assert len(data) > 20_000, "a blank page compresses to a few KB"
    if os.environ.get("FINFEAST_UPDATE_DOCS_IMG") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)
