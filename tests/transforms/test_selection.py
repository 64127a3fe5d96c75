"""Honest selection on real data: a held-out period nothing touches before the final evaluation,
importance and pruning inside training windows, visible leakage, versioned service files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from featstore_inputs import built_settings, daily_repo_copy

from finfeast.offline import open_tables
from finfeast.store import apply_repo, get_store
from transforms import selection
from transforms.labels import available_at
from transforms.selection import (
    SelectionConfig,
    holdout_split,
    load_dataset,
    prune_correlated,
    run_selection,
    walk_forward_folds,
)
from transforms.versioning import load_versions

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
    # own feature_repo copy: the service files this module writes stay out of other modules' repos
    shared = built_settings(settings_factory, data_dir, "local")
    return dataclasses.replace(shared, repo_path=daily_repo_copy())


@pytest.fixture(scope="module")
def dataset(built):
    return load_dataset(built, CONFIG)


class _Recorder:
    """Every row a model is fitted on or predicts, and every row correlation pruning reads, in
    call order: taken from the frames the estimator and the pruning step actually receive."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def model_factory(self, original):
        from sklearn.ensemble import HistGradientBoostingClassifier

        events = self.events

        class Recording(HistGradientBoostingClassifier):
            def fit(self, X, y, **kw):
                events.append({"step": "fit", "rows": X.index.to_numpy(), "model": id(self)})
                return super().fit(X, y, **kw)

            def predict_proba(self, X):
                proba = super().predict_proba(X)
                events.append(
                    {
                        "step": "predict",
                        "rows": X.index.to_numpy(),
                        "model": id(self),
                        "columns": list(X.columns),
                        "proba": proba[:, 1].copy(),
                    }
                )
                return proba

        return lambda config: Recording(**original(config).get_params())

    def pruner(self, original):
        def prune(ranked, X, threshold, limit):
            self.events.append({"step": "prune", "rows": X.index.to_numpy()})
            return original(ranked, X, threshold, limit)

        return prune


@pytest.fixture(scope="module")
def recorded(built):
    recorder = _Recorder()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(selection, "make_model", recorder.model_factory(selection.make_model))
        m.setattr(selection, "prune_correlated", recorder.pruner(selection.prune_correlated))
        result = run_selection(built, CONFIG)
    return result, recorder.events


@pytest.fixture(scope="module")
def first_run(recorded):
    return recorded[0]


def _holdout_rows_by_date(dataset, report) -> tuple[np.ndarray, pd.Timestamp]:
    start = pd.Timestamp(report["holdout"]["start"])
    return np.flatnonzero((dataset.times >= start).to_numpy()), start


def test_the_holdout_is_the_latest_fifth_after_a_purge_gap(dataset, first_run) -> None:
    report = first_run.report
    held, start = _holdout_rows_by_date(dataset, report)
    share = len(held) / len(dataset.y)
    sessions = np.unique(dataset.times.to_numpy(dtype="datetime64[ns]"))
    first = int(np.searchsorted(sessions, start.to_datetime64()))
    one_session = (dataset.times == start).sum() / len(dataset.y)
    assert CONFIG.holdout_fraction <= share < CONFIG.holdout_fraction + one_session + 1e-9
    assert report["holdout"]["rows"] == len(held)
    dev_end = pd.Timestamp(report["development"]["end"])
    assert dev_end == pd.Timestamp(sessions[first - CONFIG.gap - 1], tz="UTC")
    split = holdout_split(dataset, CONFIG)
    np.testing.assert_array_equal(split.holdout_rows, held)
    assert (dataset.times.iloc[split.dev_rows] <= dev_end).all()
    assert (dataset.available.iloc[split.dev_rows] < start).all()


def test_no_held_out_row_is_touched_before_the_final_evaluation(dataset, recorded) -> None:
    result, events = recorded
    held, start = _holdout_rows_by_date(dataset, result.report)
    sessions = np.unique(dataset.times.to_numpy(dtype="datetime64[ns]"))
    first = int(np.searchsorted(sessions, start.to_datetime64()))
    last_allowed = pd.Timestamp(sessions[first - CONFIG.gap - 1], tz="UTC")
    is_held = np.zeros(len(dataset.y), dtype=bool)
    is_held[held] = True
    touching = [i for i, e in enumerate(events) if is_held[e["rows"]].any()]
    fits = [i for i, e in enumerate(events) if e["step"] == "fit"]
    prunes = [e for e in events if e["step"] == "prune"]
    assert len(fits) >= 3 * CONFIG.n_folds + 2 and len(prunes) >= CONFIG.n_folds + 1
    for e in events:
        if e["step"] in ("fit", "prune"):  # fitting, importance models and pruning: past only
            assert not is_held[e["rows"]].any(), e["step"]
            assert dataset.times.iloc[e["rows"]].max() <= last_allowed
            assert (dataset.available.iloc[e["rows"]] < start).all()
    # the held-out rows are predicted only after the last fit, exactly once by each final model
    # (the selected set and all features), all of them at once
    assert touching and min(touching) > max(fits)
    assert len(touching) == 2
    final = [events[i] for i in touching]
    assert len({e["model"] for e in final}) == 2 and all(e["step"] == "predict" for e in final)
    for e in final:
        np.testing.assert_array_equal(e["rows"], held)
    assert sorted(len(e["columns"]) for e in final)[0] == len(result.features)


def test_recorded_holdout_auc_recomputed_independently(built, dataset, recorded) -> None:
    """The held-out AUC in the service file, recomputed with scikit-learn from the tables."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    result, events = recorded
    spec = yaml.safe_load(result.service_file.read_text())
    assert spec["features"] == result.features
    start = pd.Timestamp(result.report["holdout"]["start"])
    dev_end = pd.Timestamp(result.report["development"]["end"])
    # the rows straight from the offline tables, split by date in this test
    tables = open_tables(built)
    feats = tables.read("features_daily", columns=["symbol", "event_timestamp", *result.features])
    labels = tables.read(
        "labels_daily", columns=["symbol", "event_timestamp", "fwd_dir_5", available_at(5)]
    )
    for df in (feats, labels):
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    rows = feats.merge(labels.dropna(subset=["fwd_dir_5"]), on=["symbol", "event_timestamp"])
    rows = rows.sort_values(["event_timestamp", "symbol"], kind="stable")
    held = rows[rows["event_timestamp"] >= start]
    dev = rows[
        (rows["event_timestamp"] <= dev_end)
        & (pd.to_datetime(rows[available_at(5)], utc=True) < start)
    ]
    assert len(held) == result.report["holdout"]["rows"] and len(dev) < CONFIG.max_train_rows
    used = [f for f in result.features if dev[f].notna().any()]
    model = HistGradientBoostingClassifier(
        max_iter=CONFIG.max_iter,
        learning_rate=CONFIG.learning_rate,
        max_leaf_nodes=CONFIG.max_leaf_nodes,
        min_samples_leaf=CONFIG.min_samples_leaf,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=CONFIG.random_state,
    ).fit(dev[used], dev["fwd_dir_5"].astype(int))
    auc = roc_auc_score(held["fwd_dir_5"].astype(int), model.predict_proba(held[used])[:, 1])
    assert auc == pytest.approx(result.holdout_auc, abs=1e-9)
    assert spec["tags"]["holdout_auc"] == f"{auc:.4f}"
    # and the predictions the final selected model actually made, scored here
    final = next(
        e
        for e in events
        if e["step"] == "predict"
        and len(e["columns"]) == len(result.features)
        and len(e["rows"]) == len(held)
    )
    y = held["fwd_dir_5"].astype(int).to_numpy()
    assert roc_auc_score(y, final["proba"]) == pytest.approx(auc, abs=1e-12)


def test_folds_train_on_the_past_only_with_a_purge_gap(dataset) -> None:
    dev = holdout_split(dataset, CONFIG).dev_rows
    folds = walk_forward_folds(dataset, CONFIG, rows=dev)
    assert len(folds) == CONFIG.n_folds
    sessions = np.unique(dataset.times.to_numpy(dtype="datetime64[ns]"))
    for fold in folds:
        assert set(fold.train_rows) <= set(dev) and set(fold.test_rows) <= set(dev)
        train_times = dataset.times.iloc[fold.train_rows]
        test_times = dataset.times.iloc[fold.test_rows]
        assert train_times.max() < test_times.min()
        gap = np.searchsorted(sessions, test_times.min().to_datetime64()) - np.searchsorted(
            sessions, train_times.max().to_datetime64()
        )
        assert gap > CONFIG.gap  # `gap` whole sessions lie between the train and test blocks
        # purge: every training label was observable before the test block began
        assert (dataset.available.iloc[fold.train_rows] < test_times.min()).all()
        # importance is measured inside the training window: fit part, gap, validation part
        fit_rows, val_rows = selection.inner_split(dataset, fold.train_rows, CONFIG)
        assert set(fit_rows) | set(val_rows) <= set(fold.train_rows)
        assert (dataset.available.iloc[fit_rows] < dataset.times.iloc[val_rows].min()).all()
    # expanding window: each fold trains on more history than the one before
    sizes = [len(f.train_rows) for f in folds]
    assert sizes == sorted(sizes) and sizes[0] > 0


def test_twenty_day_folds(dataset, built) -> None:
    config = dataclasses.replace(CONFIG, horizon=20, embargo=3)
    data = load_dataset(built, config)
    split = holdout_split(data, config)
    assert (data.available.iloc[split.dev_rows] < split.start).all()
    for fold in walk_forward_folds(data, config, rows=split.dev_rows):
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
    held = report["holdout"]["auc_selected"]
    shuffled = report["shuffled_split"]["mean_auc"]
    # overlapping 5-day labels + market-wide features: the shuffled split leaks and looks better
    assert shuffled > held + 0.03, (held, shuffled)
    assert shuffled > report["walk_forward_auc"] + 0.03
    for value in (held, report["holdout"]["auc_full"], report["walk_forward_auc"]):
        assert 0.3 < value < 0.7
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
    dev = holdout_split(dataset, CONFIG).dev_rows
    corr = dataset.X.iloc[dev][first_run.features].rank().corr().abs().to_numpy()
    np.fill_diagonal(corr, 0)
    assert np.nanmax(corr) <= CONFIG.corr_threshold


def test_selection_becomes_a_versioned_service_file(built, first_run) -> None:
    services = built.repo_path / "services"
    assert first_run.service_name == "price_model_v1" and first_run.new_version
    assert first_run.service_file == services / "price_model_v1.yaml"
    written = first_run.service_file.read_text()
    again = run_selection(built, CONFIG)  # same data, same config: same features, same version
    assert (again.service_name, again.new_version, again.service_file) == (
        "price_model_v1",
        False,
        None,
    )
    assert again.holdout_auc == first_run.holdout_auc  # deterministic
    assert first_run.service_file.read_text() == written  # never rewritten
    fewer = run_selection(built, dataclasses.replace(CONFIG, max_features=2, min_features=2))
    assert fewer.service_name == "price_model_v2" and fewer.features == first_run.features[:2]
    assert sorted(p.name for p in services.iterdir()) == [
        "price_model_v1.yaml",
        "price_model_v2.yaml",
    ]
    apply_repo(built)
    store = get_store(built)
    for result in (first_run, fewer):
        service = store.get_feature_service(result.service_name)
        names = [f.name for p in service.feature_view_projections for f in p.features]
        assert sorted(names) == sorted(result.features)
        tags = service.tags
        assert tags["label"] == "fwd_dir_5"
        committed = load_versions()["market_context"]["version"]
        assert f"market_context:v{committed}" in tags["family_versions"]
        assert float(tags["holdout_auc"]) == pytest.approx(result.holdout_auc, abs=5e-5)
        assert float(tags["holdout_auc_full"]) == pytest.approx(result.holdout_auc_full, abs=5e-5)
        assert float(tags["shuffled_split_auc"]) == pytest.approx(result.shuffled_auc, abs=5e-5)
        assert tags["holdout_period"].startswith(result.report["holdout"]["start"][:10])
        assert tags["rows"] == str(result.report["rows"]) and len(tags["data_fingerprint"]) == 16
        assert "/" not in tags["data_fingerprint"] and not any("/tmp" in v for v in tags.values())
