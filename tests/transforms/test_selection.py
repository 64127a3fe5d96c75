"""Walk-forward selection on real data: honest folds, visible leakage, versioned FeatureService."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from featstore_inputs import built_settings

from finfeast.store import apply_repo, get_store
from transforms.selection import (
    SelectionConfig,
    load_dataset,
    prune_correlated,
    run_selection,
    walk_forward_folds,
)

# small and quick: 11 real symbols x 5 years, 3 folds, a small model
CONFIG = SelectionConfig(
    horizon=5,
    n_folds=3,
    min_train_sessions=250,
    max_iter=30,
    n_repeats=1,
    max_eval_rows=1500,
    min_samples_leaf=100,
    max_features=12,
    min_features=3,
)


@pytest.fixture(scope="module")
def built(settings_factory, data_dir):
    return built_settings(settings_factory, data_dir, "local")


@pytest.fixture(scope="module")
def dataset(built):
    return load_dataset(built, CONFIG)


@pytest.fixture(scope="module")
def first_run(built):
    return run_selection(built, CONFIG)


def test_folds_train_on_the_past_only_with_a_purge_gap(dataset) -> None:
    folds = walk_forward_folds(dataset, CONFIG)
    assert len(folds) == CONFIG.n_folds
    sessions = np.unique(dataset.times.to_numpy(dtype="datetime64[ns]"))
    for fold in folds:
        train_times = dataset.times.iloc[fold.train_rows]
        test_times = dataset.times.iloc[fold.test_rows]
        assert train_times.max() < test_times.min()
        gap = np.searchsorted(sessions, test_times.min().to_datetime64()) - np.searchsorted(
            sessions, train_times.max().to_datetime64()
        )
        assert gap > CONFIG.gap  # `gap` whole sessions lie between the train and test blocks
        # purge: every training label was observable before the test block began
        assert (dataset.available.iloc[fold.train_rows] < test_times.min()).all()
    # expanding window: each fold trains on more history than the one before
    sizes = [len(f.train_rows) for f in folds]
    assert sizes == sorted(sizes) and sizes[0] > 0


def test_twenty_day_folds(built) -> None:
    config = dataclasses.replace(CONFIG, horizon=20, embargo=3)
    data = load_dataset(built, config)
    for fold in walk_forward_folds(data, config):
        assert (data.available.iloc[fold.train_rows] < fold.test_start).all()
        assert (fold.test_start - fold.train_end) > np.timedelta64(23, "D")


def test_correlated_features_are_pruned(dataset) -> None:
    x = dataset.X
    kept, dropped = prune_correlated(["sma_20", "ema_20", "vix", "ret_1"], x, 0.9, 10)
    assert "ema_20" not in kept and dropped["ema_20"] == "sma_20"
    assert kept == ["sma_20", "vix", "ret_1"]
    assert prune_correlated(["sma_20", "vix", "ret_1"], x, 0.9, 2)[0] == ["sma_20", "vix"]


def test_report_shows_what_a_shuffled_split_would_claim(first_run, dataset) -> None:
    report = json.loads(first_run.report_json.read_text())
    assert first_run.report_png.stat().st_size > 10_000
    assert len(report["folds"]) == CONFIG.n_folds
    assert report["rows"] > 10_000 and report["symbols"] == 11
    wf, shuffled = report["walk_forward_auc"], report["shuffled_split"]["mean_auc"]
    # overlapping 5-day labels + market-wide features: the shuffled split leaks and looks better
    assert shuffled > wf + 0.03, (wf, shuffled)
    assert 0.3 < wf < 0.7
    ranked = [r["feature"] for r in report["ranking"]]
    assert set(ranked) == set(dataset.X.columns) and len(ranked) > 100  # every feature judged


def test_selected_features_are_stable_decorrelated_catalog_features(first_run, dataset) -> None:
    report = first_run.report
    by_name = {r["feature"]: r for r in report["ranking"]}
    assert 3 <= len(first_run.features) <= CONFIG.max_features
    if not first_run.weak_signal:
        for name in first_run.features:
            assert by_name[name]["mean_importance"] > 0
            assert by_name[name]["stability"] >= CONFIG.min_stability
    corr = dataset.X[first_run.features].rank().corr().abs().to_numpy()
    np.fill_diagonal(corr, 0)
    assert np.nanmax(corr) <= CONFIG.corr_threshold


def test_selection_becomes_a_versioned_feature_service(built, first_run) -> None:
    assert first_run.service_name == "price_model_v1" and first_run.new_version
    again = run_selection(built, CONFIG)  # same data, same config: same features, same version
    assert (again.service_name, again.new_version) == ("price_model_v1", False)
    fewer = run_selection(built, dataclasses.replace(CONFIG, max_features=2, min_features=2))
    assert fewer.service_name == "price_model_v2" and fewer.features == first_run.features[:2]
    apply_repo(built)
    store = get_store(built)
    for result in (first_run, fewer):
        service = store.get_feature_service(result.service_name)
        names = [f.name for p in service.feature_view_projections for f in p.features]
        assert sorted(names) == sorted(result.features)
        assert service.tags["label"] == "fwd_dir_5"
        assert "market_context:v1" in service.tags["family_versions"]
