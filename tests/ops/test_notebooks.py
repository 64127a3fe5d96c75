"""The notebooks execute top to bottom (nbclient, the .venv kernel) on a small real slice.

The slice is the product's own pipeline on the two small real sources (S&P 500 + NASDAQ indices
from `arch`, LEAN daily equities from the data directory): ingest -> features -> (a small
walk-forward selection, so 02 uses a selected `price_model_v<n>`) -> apply -> materialize. The
notebooks hold their own assertions (warm-up is NaN, online == offline); here every cell must run
without error, plots must be produced, and each notebook must finish within its time budget.

FINFEAST_UPDATE_NOTEBOOKS=1 writes the executed notebooks (with outputs) back into notebooks/ and
a plot of each into docs/img/ — how the committed outputs were made.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from finfeast.config import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
DOCS_IMG = REPO_ROOT / "docs" / "img"
SMALL_SOURCES = ["arch_indices", "lean_daily"]
NB_MAX_ROWS = 12_000  # training rows in 02 (the notebook's default is larger)
BUDGET_SECONDS = 90  # per notebook, kernel start included (target ~60 s)
UPDATE = os.environ.get("FINFEAST_UPDATE_NOTEBOOKS") == "1"
# notebook -> (docs image name, index of the image output to keep)
DOCS_PLOTS = {
    "01_explore_features": ("notebook_prices.png", 0),
    "02_train_model": ("notebook_feature_importance.png", 0),
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def populated(settings_factory, tmp_path_factory):
    """A local-profile store built by the real pipeline on the small real sources."""
    import shutil

    from threadpoolctl import threadpool_limits

    from finfeast.store import apply_repo, materialize
    from ingestion import run_ingest
    from transforms.build import build_feature_tables
    from transforms.selection import SelectionConfig, run_selection

    # a copy of feature_repo/: `run_selection` writes its price_model_v<n>.yaml into the repo's
    # services/, which must not change the checkout
    repo = tmp_path_factory.mktemp("nb_repo") / "feature_repo"
    shutil.copytree(REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    settings = settings_factory("local", "nb", repo_path=repo)
    summary = run_ingest(settings, sources=SMALL_SOURCES, progress=False)
    assert summary.status in {"ok", "partial"}, summary
    build_feature_tables(settings)
    # One BLAS/OpenMP thread: on 2 shared cores oversubscribed OpenMP pools are several times slower.
    with threadpool_limits(1):
        run_selection(
            settings,
            SelectionConfig(
                n_folds=2, n_repeats=1, max_iter=20, max_train_rows=5_000, max_eval_rows=1_000
            ),
        )
    apply_repo(settings)
    materialize(settings)
    return settings


def _execute(name: str, settings, monkeypatch, tmp_path: Path):
    import nbformat
    from nbclient import NotebookClient

    for key, value in settings.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINFEAST_REPO_PATH", str(settings.repo_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # see `populated`
    monkeypatch.setenv("FINFEAST_NB_MAX_ROWS", str(NB_MAX_ROWS))
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        book,
        timeout=BUDGET_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError with the cell's traceback
    seconds = time.perf_counter() - t0
    nbformat.write(book, tmp_path / name)
    if UPDATE:
        nbformat.write(book, NOTEBOOKS / name)
    return book, seconds


def _images(book) -> list[bytes]:
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def _text(book) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _check(book, name: str, seconds: float, min_images: int) -> None:
    images = _images(book)
    assert len(images) >= min_images, f"{name}: {len(images)} plots"
    assert all(img.startswith(b"\x89PNG") and len(img) > 5_000 for img in images)
    assert seconds < BUDGET_SECONDS, f"{name} took {seconds:.0f}s"
    if UPDATE and name in DOCS_PLOTS:
        target, index = DOCS_PLOTS[name]
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        (DOCS_IMG / target).write_bytes(images[index])
    print(f"{name}: {seconds:.1f}s, {len(images)} plots")


def test_01_explore_features(populated, monkeypatch, tmp_path) -> None:
    book, seconds = _execute("01_explore_features.ipynb", populated, monkeypatch, tmp_path)
    _check(book, "01_explore_features", seconds, min_images=3)
    assert "features in" in _text(book)


def test_02_train_model_uses_the_selected_service(populated, monkeypatch, tmp_path) -> None:
    from finfeast.store import get_store

    book, seconds = _execute("02_train_model.ipynb", populated, monkeypatch, tmp_path)
    _check(book, "02_train_model", seconds, min_images=1)
    services = [s.name for s in get_store(populated).list_feature_services()]
    newest = max(
        (s for s in services if s.startswith("price_model_v")),
        key=lambda s: int(s.rsplit("_v", 1)[1]),
    )
    text = _text(book)
    assert f"feature service {newest}:" in text
    assert "walk-forward AUC" in text
    assert list((populated.profile_dir / "models").glob(f"{newest}_*.joblib"))


def test_03_online_inference(populated, monkeypatch, tmp_path) -> None:
    if not list((populated.profile_dir / "models").glob("*.joblib")):
        pytest.fail("02_train_model must run first (it saves the model 03 loads)")
    book, seconds = _execute("03_online_inference.ipynb", populated, monkeypatch, tmp_path)
    _check(book, "03_online_inference", seconds, min_images=1)
    text = _text(book)
    assert "online == latest offline" in text
    assert "P(up in 5 days)" in text
