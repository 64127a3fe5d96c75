"""Honest feature selection into a versioned FeatureService `price_model_v<n>` (`finfeast select`).

Why this protocol: market features are autocorrelated and forward-return labels overlap (a 5-day
label at t shares 4 days with the one at t+1), so a shuffled K-fold puts near-copies of each test row
into training and reports skill that does not exist; and a feature set chosen by looking at the
rows it is then scored on reports the skill of the choice, not of the model. So:

1. **Held-out period.** The last `holdout_fraction` of the rows (whole sessions, in time order) is
   put aside before anything else. The development period ends `gap` (>= label horizon) sessions
   before it, and a development row whose label only became observable at or after the holdout
   start (`label_available_at_h`) is purged. Nothing below touches a held-out row until the final
   evaluation, which predicts it exactly once per model.
2. **Walk-forward folds inside the development period**: expanding training windows, each tested on
   the next block of sessions after a purge gap, the same rules as above.
3. **Importance inside training windows only.** Every training window (each fold's, and the whole
   development period for the final choice) is split in time into a fit part and its last
   `validation_fraction` of sessions (purged the same way); a gradient-boosting classifier
   (`HistGradientBoostingClassifier`, which takes null warm-up values as they are) is fitted on
   the first and permutation importance (ROC AUC drop) measured on the second. Test folds and the
   holdout are never used for importance.
4. **Selection inside training windows only.** For fold k, features are ranked by the importances
   of windows 0..k (all inside fold k's training window, windows are nested), kept when mean
   importance > 0 and stability (share of windows with importance > 0) >= `min_stability`, then
   greedily pruned on fold k's training rows so no two kept features have |Spearman| >
   `corr_threshold`, at most `max_features` (if fewer than `min_features` qualify the best-ranked
   are added and `weak_signal` is reported). The fold's selected set and the full set are both
   refitted on the fold's training rows and scored on its test block: the walk-forward AUC of the
   *selection procedure*, nested, next to that of all features.
5. **Final choice** = the same on the whole development period (importances of every window,
   pruning on development rows). The naive shuffled K-fold on the development rows shows what a
   leaky split would claim. Then the selected set and the full set are fitted on the development
   rows and scored once on the holdout: the service records the selected set's held-out AUC next
   to the full model's and the naive split's.

Deterministic: every random draw is seeded from `random_state`, the model runs one thread with no
early stopping (whose internal shuffled validation split would itself leak), so the same data and
config give the same features and scores.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from finfeast.config import Settings
from finfeast.errors import FinfeastError
from finfeast.offline import open_tables
from transforms.labels import LABELS_TABLE, available_at, direction_label

SERVICE_PREFIX = "price_model"


@dataclass(frozen=True)
class SelectionConfig:
    """Knobs of one selection run (defaults = the full `finfeast select`)."""

    horizon: int = 5
    n_folds: int = 5
    embargo: int = 0  # extra sessions of gap on top of the horizon
    holdout_fraction: float = 0.2  # share of rows (whole sessions, the latest) never seen
    validation_fraction: float = 0.25  # last share of a training window's sessions: importance
    min_train_sessions: int = 250
    symbols: tuple[str, ...] | None = None
    max_train_rows: int = 100_000
    max_eval_rows: int = 5_000  # rows per permutation-importance evaluation
    n_repeats: int = 2
    max_iter: int = 100
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 200
    max_features: int = 20
    min_features: int = 5
    min_stability: float = 0.6
    corr_threshold: float = 0.9
    max_corr_rows: int = 50_000
    random_state: int = 0
    # OpenMP threads for the model: 1 is ~10x faster than 2 on a busy 2-core machine (spin-waits)
    n_threads: int | None = 1

    @property
    def gap(self) -> int:
        return self.horizon + self.embargo


@dataclass
class Dataset:
    """Rows of (features, label) in time order, with each label's availability time.

    `X` keeps a positional index (row i has index label i), so whatever a model or the pruning
    step receives can be traced back to its rows and dates.
    """

    X: pd.DataFrame
    y: np.ndarray
    times: pd.Series
    available: pd.Series
    symbols: pd.Series


@dataclass(frozen=True)
class Fold:
    index: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


@dataclass(frozen=True)
class Holdout:
    """The development rows (everything selection may use) and the held-out rows."""

    dev_rows: np.ndarray
    holdout_rows: np.ndarray
    dev_start: pd.Timestamp
    dev_end: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass
class SelectionResult:
    service_name: str
    version: int
    features: list[str]
    report_json: Path
    report_png: Path
    walk_forward_auc: float
    shuffled_auc: float
    holdout_auc: float
    holdout_auc_full: float
    weak_signal: bool
    new_version: bool
    service_file: Path | None = None
    report: dict[str, Any] = field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        state = f"new: wrote {self.service_file}" if self.new_version else "unchanged"
        return (
            f"{self.service_name} ({state}): {len(self.features)} features; held-out AUC "
            f"{self.holdout_auc:.3f} (all features {self.holdout_auc_full:.3f}); walk-forward "
            f"{self.walk_forward_auc:.3f}; a shuffled split would claim {self.shuffled_auc:.3f}; "
            f"report {self.report_json}"
        )


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Catalog features present in `frame`, in catalog order."""
    from transforms import catalog

    return [f.name for f in catalog.all_features() if f.name in frame.columns]


def load_dataset(settings: Settings, config: SelectionConfig) -> Dataset:
    """features_daily joined with labels_daily on (symbol, event_timestamp), labelled rows only.

    The exact-key join is point-in-time: every feature row is stamped at the session close it was
    computed from, which is the moment the prediction is made.
    """
    tables = open_tables(settings)
    for name in ("features_daily", LABELS_TABLE):
        if not tables.exists(name):
            raise FinfeastError(f"offline table {name!r} does not exist: run `finfeast features`")
    label, avail = direction_label(config.horizon), available_at(config.horizon)
    labels = tables.read(LABELS_TABLE, columns=["symbol", "event_timestamp", label, avail])
    feats = tables.read("features_daily")
    if config.symbols:
        feats = feats[feats["symbol"].isin(config.symbols)]
        labels = labels[labels["symbol"].isin(config.symbols)]
    cols = feature_columns(feats)
    if not cols:
        raise FinfeastError("features_daily holds no catalog features")
    for df in (feats, labels):
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    rows = feats[["symbol", "event_timestamp", *cols]].merge(
        labels.dropna(subset=[label]), on=["symbol", "event_timestamp"], how="inner"
    )
    if rows.empty:
        raise FinfeastError("no labelled feature rows to select from")
    rows = rows.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
    return Dataset(
        X=rows[cols].astype("float64"),
        y=rows[label].to_numpy(dtype="int64"),
        times=rows["event_timestamp"],
        available=pd.to_datetime(rows[avail], utc=True),
        symbols=rows["symbol"],
    )


def _sessions(data: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique sessions of `rows`, session index of each of `rows`)."""
    times = data.times.to_numpy(dtype="datetime64[ns]")[rows]  # naive UTC
    sessions = np.unique(times)
    return sessions, np.searchsorted(sessions, times)


def _purged_before(
    data: Dataset, rows: np.ndarray, session_idx: np.ndarray, last: int, start: np.datetime64
) -> np.ndarray:
    """Rows of sessions <= `last` whose label was observable before `start` (the purge)."""
    available = data.available.to_numpy(dtype="datetime64[ns]")[rows]
    return rows[(session_idx <= last) & (available < start)]


def holdout_split(data: Dataset, config: SelectionConfig) -> Holdout:
    """The latest whole sessions holding `holdout_fraction` of the rows, and the purged past."""
    rows = np.arange(len(data.y))
    sessions, session_idx = _sessions(data, rows)
    counts = np.bincount(session_idx, minlength=len(sessions))
    from_end = np.cumsum(counts[::-1])
    n_hold = int(np.searchsorted(from_end, config.holdout_fraction * len(rows))) + 1
    first = len(sessions) - n_hold
    dev_last = first - config.gap - 1
    if dev_last < config.min_train_sessions + config.gap + config.n_folds:
        raise FinfeastError(
            f"too few sessions ({len(sessions)}) for a {config.holdout_fraction:.0%} holdout, "
            f"{config.n_folds} folds and {config.min_train_sessions} training sessions"
        )
    dev = _purged_before(data, rows, session_idx, dev_last, sessions[first])
    return Holdout(
        dev_rows=dev,
        holdout_rows=rows[session_idx >= first],
        dev_start=pd.Timestamp(sessions[0], tz="UTC"),
        dev_end=pd.Timestamp(sessions[dev_last], tz="UTC"),
        start=pd.Timestamp(sessions[first], tz="UTC"),
        end=pd.Timestamp(sessions[-1], tz="UTC"),
    )


def walk_forward_folds(
    data: Dataset, config: SelectionConfig, rows: np.ndarray | None = None
) -> list[Fold]:
    """Expanding-window folds over the sessions of `rows` (default all) with a purge gap."""
    rows = np.arange(len(data.y)) if rows is None else np.asarray(rows)
    sessions, session_idx = _sessions(data, rows)
    if len(sessions) < config.min_train_sessions + config.gap + config.n_folds:
        raise FinfeastError(
            f"too few sessions ({len(sessions)}) for {config.n_folds} folds after "
            f"{config.min_train_sessions} training sessions"
        )
    test_sessions = np.arange(config.min_train_sessions + config.gap, len(sessions))
    folds = []
    for k, block in enumerate(np.array_split(test_sessions, config.n_folds)):
        first, last = int(block[0]), int(block[-1])
        train_last = first - config.gap - 1
        folds.append(
            Fold(
                index=k,
                train_rows=_purged_before(data, rows, session_idx, train_last, sessions[first]),
                test_rows=rows[(session_idx >= first) & (session_idx <= last)],
                train_end=pd.Timestamp(sessions[train_last], tz="UTC"),
                test_start=pd.Timestamp(sessions[first], tz="UTC"),
                test_end=pd.Timestamp(sessions[last], tz="UTC"),
            )
        )
    return folds


def inner_split(
    data: Dataset, rows: np.ndarray, config: SelectionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of one training window: its last sessions validate."""
    sessions, session_idx = _sessions(data, rows)
    n_val = max(1, int(round(len(sessions) * config.validation_fraction)))
    first = len(sessions) - n_val
    fit_last = first - config.gap - 1
    if fit_last < 1:
        raise FinfeastError(f"a training window of {len(sessions)} sessions is too short")
    return _purged_before(data, rows, session_idx, fit_last, sessions[first]), rows[
        session_idx >= first
    ]


def make_model(config: SelectionConfig):  # noqa: ANN201 - sklearn estimator
    """The one model every step fits (seeded, no early stopping: see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=config.random_state,
    )


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=limit, replace=False)) if len(rows) > limit else rows


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _usable(X: pd.DataFrame, features: list[str]) -> list[str]:
    """Features with at least one value in the training rows (a 252-bar momentum is all warm-up
    in the first year: it carries no information there, so that fit leaves it out)."""
    present = X[features].notna().any().to_numpy()
    return [f for f, keep in zip(features, present, strict=True) if keep]


def fit(data: Dataset, rows: np.ndarray, features: list[str], config: SelectionConfig):  # noqa: ANN201
    """The model fitted on `rows` x `features` (minus features all null there), + those used."""
    X = data.X.iloc[rows]
    used = _usable(X, features)
    return make_model(config).fit(X[used], data.y[rows]), used


def score(data: Dataset, model: Any, used: list[str], rows: np.ndarray) -> float:
    return _auc(data.y[rows], model.predict_proba(data.X.iloc[rows][used])[:, 1])


def window_importance(
    data: Dataset, window: np.ndarray, config: SelectionConfig, seed: int
) -> dict[str, float]:
    """Permutation importance of every feature inside one training window (fit -> validate)."""
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(config.random_state + seed)
    fit_rows, val_rows = inner_split(data, window, config)
    fit_rows = _subsample(fit_rows, config.max_train_rows, rng)
    val_rows = _subsample(val_rows, config.max_eval_rows, rng)
    model, used = fit(data, fit_rows, list(data.X.columns), config)
    perm = permutation_importance(
        model,
        data.X.iloc[val_rows][used],
        data.y[val_rows],
        scoring="roc_auc",
        n_repeats=config.n_repeats,
        random_state=config.random_state + seed,
    )
    importance = dict.fromkeys(data.X.columns, 0.0)
    importance.update(zip(used, perm.importances_mean.astype(float), strict=True))
    return importance


def rank_features(importances: list[dict[str, float]]) -> pd.DataFrame:
    """Mean/std importance and stability per feature over windows, best first."""
    imp = pd.DataFrame(importances)
    table = pd.DataFrame(
        {
            "mean_importance": imp.mean(),
            "std_importance": imp.std(ddof=0),
            "stability": (imp > 0).mean(),
        }
    )
    return table.sort_values(["mean_importance", "stability"], ascending=False, kind="stable")


def prune_correlated(
    ranked: list[str], X: pd.DataFrame, threshold: float, limit: int
) -> tuple[list[str], dict[str, str]]:
    """Greedy: keep features in rank order unless |Spearman| > threshold with one already kept."""
    kept: list[str] = []
    dropped: dict[str, str] = {}
    if not ranked:
        return kept, dropped
    corr = X[ranked].rank().corr().abs()
    for name in ranked:
        if len(kept) >= limit:
            break
        partner = next((k for k in kept if corr.loc[name, k] > threshold), None)
        if partner is None:
            kept.append(name)
        else:
            dropped[name] = partner
    return kept, dropped


def select_features(
    ranking: pd.DataFrame, X: pd.DataFrame, config: SelectionConfig
) -> tuple[list[str], dict[str, str], bool]:
    """Stable, useful, decorrelated features (see the module docstring); + weak-signal flag.

    `X` must hold training rows only: the correlations are measured on it.
    """
    qualified = ranking[
        (ranking["mean_importance"] > 0) & (ranking["stability"] >= config.min_stability)
    ].index.tolist()
    kept, dropped = prune_correlated(qualified, X, config.corr_threshold, config.max_features)
    weak = len(kept) < config.min_features
    if weak:
        rest = [n for n in ranking.index if n not in kept and n not in dropped]
        extra, more_dropped = prune_correlated(
            kept + rest, X, config.corr_threshold, config.min_features
        )
        kept, dropped = extra, {**dropped, **more_dropped}
    return kept, dropped, weak


def select_in_window(
    data: Dataset,
    ranking: pd.DataFrame,
    window: np.ndarray,
    config: SelectionConfig,
    seed: int,
) -> tuple[list[str], dict[str, str], bool]:
    """`select_features` with the correlations measured on (a sample of) the window's rows."""
    rng = np.random.default_rng(config.random_state + seed)
    sample = _subsample(window, config.max_corr_rows, rng)
    return select_features(ranking, data.X.iloc[sample], config)


def shuffled_split_auc(
    data: Dataset, rows: np.ndarray, features: list[str], config: SelectionConfig
) -> list[float]:
    """What a naive shuffled K-fold (no time order, no purge) claims on `rows` (dev rows)."""
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(config.random_state)
    rows = _subsample(rows, config.max_train_rows, rng)
    aucs = []
    splitter = KFold(n_splits=config.n_folds, shuffle=True, random_state=config.random_state)
    for train_pos, test_pos in splitter.split(rows):
        train, test = rows[train_pos], _subsample(rows[test_pos], config.max_eval_rows, rng)
        model, used = fit(data, train, features, config)
        aucs.append(score(data, model, used, test))
    return aucs


def dataset_fingerprint(data: Dataset) -> str:
    """A hash of exactly the rows, labels and feature values selection ran on (lineage tag)."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(data.X, index=False).to_numpy().tobytes())
    digest.update(data.y.tobytes())
    digest.update(pd.util.hash_pandas_object(data.times, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(data.symbols, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _plot(report: dict[str, Any], ranking: pd.DataFrame, selected: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.4]})
    folds = report["folds"]
    x = np.arange(len(folds))
    ax1.bar(x - 0.3, [f["auc_full"] or np.nan for f in folds], width=0.3, label="all features")
    ax1.bar(x, [f["auc_selected"] or np.nan for f in folds], width=0.3, label="selected (nested)")
    sh = report["shuffled_split"]["fold_auc"]
    ax1.bar(np.arange(len(sh)) + 0.3, sh, width=0.3, label="naive shuffled K-fold (selected)")
    h = report["holdout"]
    for value, style, name in (
        (h["auc_selected"], "-", "held-out, selected"),
        (h["auc_full"], ":", "held-out, all features"),
    ):
        if value is not None:
            ax1.axhline(value, color="tab:red", linestyle=style, label=name)
    ax1.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    ax1.set_xlabel("walk-forward fold (development period)")
    ax1.set_ylabel("ROC AUC")
    ax1.set_title(f"direction of {report['horizon']}-day return: honest vs leaky evaluation")
    ax1.legend(loc="lower center", fontsize=8)
    top = ranking.head(25).iloc[::-1]
    colors = ["tab:green" if n in selected else "tab:gray" for n in top.index]
    ax2.barh(top.index, top["mean_importance"], xerr=top["std_importance"], color=colors)
    ax2.set_xlabel("permutation importance (AUC drop) in training windows, mean +/- std")
    ax2.set_title(f"{report['service']}: selected features in green")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _fmt(value: float | None) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


def run_selection(settings: Settings, config: SelectionConfig | None = None) -> SelectionResult:
    """Evaluate, select, score on the holdout, report; writes the next service file to commit."""
    # threadpoolctl only limits OpenMP runtimes already loaded: load scikit-learn's first
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    from transforms import catalog
    from transforms.versioning import (
        active_versions,
        history_path,
        load_versions,
        next_service_version,
        save_service_spec,
        services_dir,
        versions_path,
    )

    config = config or SelectionConfig()
    data = load_dataset(settings, config)
    holdout = holdout_split(data, config)
    folds = walk_forward_folds(data, config, rows=holdout.dev_rows)
    all_features = list(data.X.columns)
    logger.info(
        "select: {} rows ({} development, {} held out from {}), {} features, {} folds",
        len(data.y),
        len(holdout.dev_rows),
        len(holdout.holdout_rows),
        _day(holdout.start),
        len(all_features),
        len(folds),
    )
    importances: list[dict[str, float]] = []
    fold_results: list[dict[str, Any]] = []
    with threadpool_limits(config.n_threads):
        for fold in folds:
            importances.append(window_importance(data, fold.train_rows, config, fold.index))
            ranking = rank_features(importances)  # windows 0..k: inside this fold's training
            chosen, _, _ = select_in_window(data, ranking, fold.train_rows, config, fold.index)
            rng = np.random.default_rng(config.random_state + fold.index)
            train = _subsample(fold.train_rows, config.max_train_rows, rng)
            full_model, full_used = fit(data, train, all_features, config)
            sel_model, sel_used = fit(data, train, chosen, config)
            fold_results.append(
                {
                    "fold": fold.index,
                    "train_rows": int(len(fold.train_rows)),
                    "test_rows": int(len(fold.test_rows)),
                    "train_end": fold.train_end.isoformat(),
                    "test_start": fold.test_start.isoformat(),
                    "test_end": fold.test_end.isoformat(),
                    "gap_sessions": config.gap,
                    "auc_full": score(data, full_model, full_used, fold.test_rows),
                    "auc_selected": score(data, sel_model, sel_used, fold.test_rows),
                    "selected": chosen,
                }
            )
            logger.info(
                "select: fold {} AUC all {:.4f}, selected {:.4f}",
                fold.index,
                fold_results[-1]["auc_full"],
                fold_results[-1]["auc_selected"],
            )
        # the final choice: every window's importances, pruned on the development rows
        importances.append(window_importance(data, holdout.dev_rows, config, len(folds)))
        ranking = rank_features(importances)
        selected, dropped, weak = select_in_window(
            data, ranking, holdout.dev_rows, config, len(folds)
        )
        shuffled = shuffled_split_auc(data, holdout.dev_rows, selected, config)
        rng = np.random.default_rng(config.random_state + len(folds) + 1)
        train = _subsample(holdout.dev_rows, config.max_train_rows, rng)
        final_full, final_full_used = fit(data, train, all_features, config)
        final_sel, final_sel_used = fit(data, train, selected, config)
        # the one look at the held-out period, after everything above is fixed
        hold_full = score(data, final_full, final_full_used, holdout.holdout_rows)
        hold_sel = score(data, final_sel, final_sel_used, holdout.holdout_rows)
    logger.info("select: held-out AUC all {:.4f}, selected {:.4f}", hold_full, hold_sel)

    directory = services_dir(settings.repo_path)
    version, is_new = next_service_version(directory, SERVICE_PREFIX, selected)
    name = f"{SERVICE_PREFIX}_v{version}"
    wf_full = float(np.nanmean([r["auc_full"] for r in fold_results]))
    wf_sel = float(np.nanmean([r["auc_selected"] for r in fold_results]))
    sh_auc = float(np.nanmean(shuffled))
    # lineage: the versions that built this deployment's features_daily (its build record),
    # else the committed ones; a family built from an uncommitted definition is named
    built = active_versions(history_path(settings.profile_dir))
    families = {k: v["version"] for k, v in built.items()} or {
        k: v["version"] for k, v in load_versions(versions_path(settings.repo_path)).items()
    }
    unversioned = sorted(k for k, v in built.items() if not v.get("versioned", True))
    fingerprint = dataset_fingerprint(data)
    times = data.times
    report = {
        "service": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": direction_label(config.horizon),
        "horizon": config.horizon,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "rows": int(len(data.y)),
        "symbols": int(data.symbols.nunique()),
        "period": [times.iloc[0].isoformat(), times.iloc[-1].isoformat()],
        "data_fingerprint": fingerprint,
        "positive_rate": float(data.y.mean()),
        "development": {
            "rows": int(len(holdout.dev_rows)),
            "start": holdout.dev_start.isoformat(),
            "end": holdout.dev_end.isoformat(),
        },
        "holdout": {
            "rows": int(len(holdout.holdout_rows)),
            "start": holdout.start.isoformat(),
            "end": holdout.end.isoformat(),
            "gap_sessions": config.gap,
            "auc_selected": _finite(hold_sel),
            "auc_full": _finite(hold_full),
        },
        "folds": [
            {k: (_finite(v) if k.startswith("auc") else v) for k, v in r.items()}
            for r in fold_results
        ],
        "walk_forward_auc": _finite(wf_sel),
        "walk_forward_auc_full": _finite(wf_full),
        "shuffled_split": {
            "fold_auc": [_finite(a) for a in shuffled],
            "mean_auc": _finite(sh_auc),
            "claimed_extra_auc": _finite(sh_auc - hold_sel),
            "note": "shuffled K-fold of the selected set on the development rows ignores time "
            "order and overlapping labels: the extra AUC over the held-out score is leakage",
        },
        "ranking": [
            {"feature": n, **{k: float(v) for k, v in row.items()}, "family": catalog.family_of(n)}
            for n, row in ranking.iterrows()
        ],
        "selected": selected,
        "dropped_as_correlated": dropped,
        "weak_signal": weak,
        "family_versions": families,
        "unversioned_families": unversioned,
    }
    reports = settings.reports_dir / "selection"
    reports.mkdir(parents=True, exist_ok=True)
    report_json, report_png = reports / f"{name}.json", reports / f"{name}.png"
    report_json.write_text(json.dumps(report, indent=2))
    _plot(report, ranking, selected, report_png)
    service_file = None
    if is_new:
        service_file = save_service_spec(
            directory,
            name,
            selected,
            description=(
                f"Features selected for the {config.horizon}-day direction on "
                f"{_day(holdout.dev_start)}..{_day(holdout.dev_end)}; held-out "
                f"{_day(holdout.start)}..{_day(holdout.end)} AUC {hold_sel:.3f} (all "
                f"{len(all_features)} features {hold_full:.3f}; a shuffled split would claim "
                f"{sh_auc:.3f})"
            ),
            tags=service_tags(report, version, config),
            header=f"# written by `finfeast select`; commit it. Versions are immutable: a new "
            f"selection is a new file.\n# report: reports/selection/{name}.json\n",
        )
    return SelectionResult(
        name,
        version,
        selected,
        report_json,
        report_png,
        wf_sel,
        sh_auc,
        hold_sel,
        hold_full,
        weak,
        is_new,
        service_file,
        report,
    )


def service_tags(report: dict[str, Any], version: int, config: SelectionConfig) -> dict[str, str]:
    """Scores and lineage of a selection as Feast tags (str -> str; no machine paths or clocks,
    so the same data and config give the same file on every machine)."""
    h = report["holdout"]
    return {
        "version": str(version),
        "label": report["label"],
        "horizon": str(report["horizon"]),
        "holdout_auc": _fmt(h["auc_selected"]),
        "holdout_auc_full": _fmt(h["auc_full"]),
        "shuffled_split_auc": _fmt(report["shuffled_split"]["mean_auc"]),
        "walk_forward_auc": _fmt(report["walk_forward_auc"]),
        "walk_forward_auc_full": _fmt(report["walk_forward_auc_full"]),
        "holdout_period": f"{h['start'][:10]}..{h['end'][:10]}",
        "holdout_rows": str(h["rows"]),
        "development_period": f"{report['development']['start'][:10]}.."
        f"{report['development']['end'][:10]}",
        "development_rows": str(report["development"]["rows"]),
        "gap_sessions": str(h["gap_sessions"]),
        "rows": str(report["rows"]),
        "symbols": str(report["symbols"]),
        "data_fingerprint": report["data_fingerprint"],
        "features_judged": str(len(report["ranking"])),
        "weak_signal": str(report["weak_signal"]).lower(),
        "seed": str(config.random_state),
        # lineage: the family definitions (feature_repo/versions.yaml) the selection was made on
        "family_versions": ",".join(
            f"{k}:v{v}" for k, v in sorted(report["family_versions"].items())
        ),
        "unversioned_families": ",".join(report["unversioned_families"]) or "none",
    }
