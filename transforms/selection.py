"""Walk-forward feature selection into a versioned FeatureService `price_model_v<n>` (`finfeast select`).

Why walk-forward: market features are autocorrelated and forward-return labels overlap (a 5-day
label at t shares 4 days with the one at t+1), so a shuffled K-fold puts near-copies of each test row
into training and reports skill that does not exist. Here every fold trains on the past only
(expanding window) and tests on the next block of sessions, with a gap of at least the label
horizon between the last training session and the first test session, and any training row whose
label only became known at or after the test start (`label_available_at_h`) purged.

Per fold: a gradient-boosting classifier (scikit-learn `HistGradientBoostingClassifier`, which takes
null warm-up values as they are) predicts the direction of the h-day forward return; ROC AUC on the
test block; permutation importance (AUC drop) of every feature on the test block. Across folds:
mean and std of importance and stability (share of folds with importance > 0). Selected: features
with positive mean importance and stability >= `min_stability`, greedily pruned so no two kept
features have |Spearman correlation| > `corr_threshold`, at most `max_features`. If fewer than
`min_features` qualify the best-ranked are added and the report says `weak_signal: true`.

The report (JSON + PNG) also shows what a naive shuffled K-fold on the same rows and model claims,
so the leakage the walk-forward protocol avoids is visible.
"""

from __future__ import annotations

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
    min_train_sessions: int = 250
    symbols: tuple[str, ...] | None = None
    max_train_rows: int = 100_000
    max_eval_rows: int = 5_000
    n_repeats: int = 2
    max_iter: int = 100
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 200
    max_features: int = 20
    min_features: int = 5
    min_stability: float = 0.6
    corr_threshold: float = 0.9
    random_state: int = 0
    # OpenMP threads for the model: 1 is ~10x faster than 2 on a busy 2-core machine (spin-waits)
    n_threads: int | None = 1

    @property
    def gap(self) -> int:
        return self.horizon + self.embargo


@dataclass
class Dataset:
    """Rows of (features, label) in time order, with each label's availability time."""

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


@dataclass
class SelectionResult:
    service_name: str
    version: int
    features: list[str]
    report_json: Path
    report_png: Path
    walk_forward_auc: float
    shuffled_auc: float
    weak_signal: bool
    new_version: bool
    report: dict[str, Any] = field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        state = "new" if self.new_version else "unchanged"
        return (
            f"{self.service_name} ({state}): {len(self.features)} features; walk-forward AUC "
            f"{self.walk_forward_auc:.3f} vs shuffled split {self.shuffled_auc:.3f}; "
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


def walk_forward_folds(data: Dataset, config: SelectionConfig) -> list[Fold]:
    """Expanding-window folds over sessions with a purge/embargo gap >= the label horizon."""
    times = data.times.to_numpy(dtype="datetime64[ns]")  # naive UTC
    available = data.available.to_numpy(dtype="datetime64[ns]")  # NaT never occurs: labelled rows
    sessions = np.unique(times)
    if len(sessions) < config.min_train_sessions + config.gap + config.n_folds:
        raise FinfeastError(
            f"too few sessions ({len(sessions)}) for {config.n_folds} folds after "
            f"{config.min_train_sessions} training sessions"
        )
    session_idx = np.searchsorted(sessions, times)
    test_sessions = np.arange(config.min_train_sessions + config.gap, len(sessions))
    folds = []
    for k, block in enumerate(np.array_split(test_sessions, config.n_folds)):
        first, last = int(block[0]), int(block[-1])
        train_last = first - config.gap - 1
        # purge: a training label must be observable before the first test session
        train = (session_idx <= train_last) & (available < sessions[first])
        test = (session_idx >= first) & (session_idx <= last)
        folds.append(
            Fold(
                index=k,
                train_rows=np.flatnonzero(train),
                test_rows=np.flatnonzero(test),
                train_end=pd.Timestamp(sessions[train_last], tz="UTC"),
                test_start=pd.Timestamp(sessions[first], tz="UTC"),
                test_end=pd.Timestamp(sessions[last], tz="UTC"),
            )
        )
    return folds


def _model(config: SelectionConfig):  # noqa: ANN202 - sklearn estimator
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=1.0,
        random_state=config.random_state,
    )


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=limit, replace=False)) if len(rows) > limit else rows


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def evaluate_fold(data: Dataset, fold: Fold, config: SelectionConfig) -> dict[str, Any]:
    """Fit on the fold's past, score and permute on its test block."""
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(config.random_state + fold.index)
    train = _subsample(fold.train_rows, config.max_train_rows, rng)
    test = _subsample(fold.test_rows, config.max_eval_rows, rng)
    # a feature still in warm-up over the whole training window (e.g. a 252-bar momentum in the
    # first fold) carries no information there: leave it out of this fold, importance 0
    X_train = data.X.iloc[train]
    usable = X_train.columns[X_train.notna().any().to_numpy()]
    model = _model(config).fit(X_train[usable], data.y[train])
    X_test = data.X.iloc[test][usable]
    auc = _auc(data.y[test], model.predict_proba(X_test)[:, 1])
    perm = permutation_importance(
        model,
        X_test,
        data.y[test],
        scoring="roc_auc",
        n_repeats=config.n_repeats,
        random_state=config.random_state,
    )
    importance = dict.fromkeys(data.X.columns, 0.0)
    importance.update(zip(usable, perm.importances_mean.astype(float), strict=True))
    return {
        "fold": fold.index,
        "train_rows": int(len(fold.train_rows)),
        "test_rows": int(len(fold.test_rows)),
        "train_end": fold.train_end.isoformat(),
        "test_start": fold.test_start.isoformat(),
        "test_end": fold.test_end.isoformat(),
        "gap_sessions": config.gap,
        "auc": auc,
        "features_used": int(len(usable)),
        "importance": importance,
    }


def shuffled_split_auc(data: Dataset, config: SelectionConfig) -> list[float]:
    """What a naive shuffled K-fold (no time order, no purge) claims on the same rows and model."""
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(config.random_state)
    rows = _subsample(np.arange(len(data.y)), config.max_train_rows, rng)
    aucs = []
    splitter = KFold(n_splits=config.n_folds, shuffle=True, random_state=config.random_state)
    for train_pos, test_pos in splitter.split(rows):
        train, test = rows[train_pos], _subsample(rows[test_pos], config.max_eval_rows, rng)
        X_train = data.X.iloc[train]
        usable = X_train.columns[X_train.notna().any().to_numpy()]
        model = _model(config).fit(X_train[usable], data.y[train])
        aucs.append(_auc(data.y[test], model.predict_proba(data.X.iloc[test][usable])[:, 1]))
    return aucs


def rank_features(fold_results: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean/std importance and stability per feature, best first."""
    imp = pd.DataFrame([r["importance"] for r in fold_results])
    table = pd.DataFrame(
        {
            "mean_importance": imp.mean(),
            "std_importance": imp.std(ddof=0),
            "stability": (imp > 0).mean(),
        }
    )
    return table.sort_values(["mean_importance", "stability"], ascending=False)


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
    """Stable, useful, decorrelated features (see the module docstring); + weak-signal flag."""
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


def _plot(report: dict[str, Any], ranking: pd.DataFrame, selected: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.4]})
    wf = [f["auc"] for f in report["folds"]]
    sh = report["shuffled_split"]["fold_auc"]
    x = np.arange(max(len(wf), len(sh)))
    ax1.bar(x[: len(wf)] - 0.2, wf, width=0.4, label="walk-forward (purged)")
    ax1.bar(x[: len(sh)] + 0.2, sh, width=0.4, label="naive shuffled K-fold")
    ax1.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    ax1.set_xlabel("fold")
    ax1.set_ylabel("ROC AUC")
    ax1.set_title(f"direction of {report['horizon']}-day return: honest vs leaky evaluation")
    ax1.legend(loc="lower center")
    top = ranking.head(25).iloc[::-1]
    colors = ["tab:green" if n in selected else "tab:gray" for n in top.index]
    ax2.barh(top.index, top["mean_importance"], xerr=top["std_importance"], color=colors)
    ax2.set_xlabel("permutation importance (AUC drop), mean +/- std over folds")
    ax2.set_title(f"{report['service']}: selected features in green")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def run_selection(settings: Settings, config: SelectionConfig | None = None) -> SelectionResult:
    """Evaluate, select, version and report; writes the service spec the feature repo loads."""
    # threadpoolctl only limits OpenMP runtimes already loaded: load scikit-learn's first
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    from transforms import catalog
    from transforms.versioning import active_versions, history_path, next_service_version

    config = config or SelectionConfig()
    data = load_dataset(settings, config)
    folds = walk_forward_folds(data, config)
    logger.info("select: {} rows, {} features, {} folds", len(data.y), data.X.shape[1], len(folds))
    fold_results = []
    with threadpool_limits(config.n_threads):
        for fold in folds:
            fold_results.append(evaluate_fold(data, fold, config))
            logger.info("select: fold {} AUC {:.4f}", fold.index, fold_results[-1]["auc"])
        shuffled = shuffled_split_auc(data, config)
    ranking = rank_features(fold_results)
    sample = _subsample(np.arange(len(data.y)), 50_000, np.random.default_rng(config.random_state))
    selected, dropped, weak = select_features(ranking, data.X.iloc[sample], config)

    services_dir = settings.profile_dir / "feature_services"
    version, is_new = next_service_version(services_dir, SERVICE_PREFIX, selected)
    name = f"{SERVICE_PREFIX}_v{version}"
    wf_auc = float(np.nanmean([r["auc"] for r in fold_results]))
    sh_auc = float(np.nanmean(shuffled))
    families = active_versions(history_path(settings.profile_dir))
    report = {
        "service": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": direction_label(config.horizon),
        "horizon": config.horizon,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "rows": int(len(data.y)),
        "symbols": int(data.symbols.nunique()),
        "positive_rate": float(data.y.mean()),
        "folds": [
            {k: (_finite(v) if k == "auc" else v) for k, v in r.items() if k != "importance"}
            for r in fold_results
        ],
        "walk_forward_auc": _finite(wf_auc),
        "shuffled_split": {
            "fold_auc": [_finite(a) for a in shuffled],
            "mean_auc": _finite(sh_auc),
            "claimed_extra_auc": _finite(sh_auc - wf_auc),
            "note": "shuffled K-fold ignores time order and overlapping labels: the extra AUC is leakage",
        },
        "ranking": [
            {"feature": n, **{k: float(v) for k, v in row.items()}, "family": catalog.family_of(n)}
            for n, row in ranking.iterrows()
        ],
        "selected": selected,
        "dropped_as_correlated": dropped,
        "weak_signal": weak,
        "family_versions": {k: v["version"] for k, v in families.items()},
    }
    reports = settings.reports_dir / "selection"
    reports.mkdir(parents=True, exist_ok=True)
    report_json, report_png = reports / f"{name}.json", reports / f"{name}.png"
    report_json.write_text(json.dumps(report, indent=2))
    _plot(report, ranking, selected, report_png)
    if is_new:
        from transforms.versioning import save_service_spec

        save_service_spec(
            services_dir,
            name,
            selected,
            description=(
                f"Walk-forward selected features for the {config.horizon}-day direction "
                f"(AUC {wf_auc:.3f} walk-forward; shuffled split would claim {sh_auc:.3f})"
            ),
            tags={
                "version": str(version),
                "label": direction_label(config.horizon),
                "report": str(report_json),
                "walk_forward_auc": f"{wf_auc:.4f}",
                "weak_signal": str(weak).lower(),
                # lineage: the family definitions the selection was made on
                "family_versions": ",".join(
                    f"{k}:v{v}" for k, v in sorted(report["family_versions"].items())
                ),
            },
        )
    return SelectionResult(
        name, version, selected, report_json, report_png, wf_auc, sh_auc, weak, is_new, report
    )
