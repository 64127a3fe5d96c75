"""Model code against the feature store: train on a feature service, then score live features.

    python examples/online_inference.py                   # project store (after `finfeast run`)
    python examples/online_inference.py --service realtime_v1 --symbols AAPL IBM
    python examples/online_inference.py --demo            # self-contained: real S&P 500 prices,
                                                          # 50-feature service px_v1, SQLite online

1. Training set: `get_historical_features(entity_df, features=<FeatureService>)`, a point-in-time
   join, so each row sees only feature values known at its timestamp. The label (next-day
   direction, `fwd_dir_1`) comes from the separate labels table, never from a feature view.
2. Online: `get_online_features(features=<the same FeatureService>, entity_rows=...)`: the model
   sees exactly the feature set it was trained on, by name.
(For HTTP clients: POST the same service name to `finfeast serve`'s /get-online-features.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEMO_SYMBOLS = ["AAPL", "IBM", "MSFT", "JPM", "XOM", "GE", "BAC", "T", "KO", "PFE"]


def project_store(service: str):
    """The profile's store (FINFEAST_* settings) and its `labels_daily` table."""
    from finfeast.config import load_settings
    from finfeast.offline import open_tables
    from finfeast.store import get_store

    settings = load_settings()
    return get_store(settings), service, open_tables(settings).read("labels_daily")


def demo_store(workdir: Path, data_dir: Path):
    """A small real-price repo (bench.price_repo) and labels from the same bars."""
    from bench.price_repo import SERVICE, build_price_repo, load_price_features
    from transforms.labels import compute_labels

    repo = build_price_repo(
        workdir, data_dir, "example", online="sqlite", offline="duckdb", symbols=DEMO_SYMBOLS
    )
    bars = load_price_features(data_dir, DEMO_SYMBOLS)[["symbol", "event_timestamp", "close"]]
    return repo.store(), SERVICE, compute_labels(bars, horizons=[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--service", default="daily_v1", help="feature service (project mode)")
    parser.add_argument("--symbols", nargs="+", default=["AAPL", "IBM", "MSFT"])
    parser.add_argument("--demo", action="store_true", help="self-contained real-price demo")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    if args.demo:
        store, service_name, labels = demo_store(Path(tempfile.mkdtemp()), args.data_dir)
    else:
        store, service_name, labels = project_store(args.service)
    service = store.get_feature_service(service_name)
    features = [f.name for p in service.feature_view_projections for f in p.features]

    # 1. Point-in-time training set for the service, label joined by (symbol, time).
    entity_df = labels[["symbol", "event_timestamp", "fwd_dir_1"]].dropna()
    train = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    train = train.dropna(subset=[*features, "fwd_dir_1"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[features].to_numpy(), train["fwd_dir_1"].to_numpy())
    print(f"trained on {len(train)} rows x {len(features)} features of {service_name}")

    # 2. Live features for the same service -> prediction.
    online = store.get_online_features(
        features=service, entity_rows=[{"symbol": s} for s in args.symbols]
    ).to_df()
    ready = online.dropna(subset=features)
    for symbol in sorted(set(online["symbol"]) - set(ready["symbol"])):
        print(f"{symbol}: no complete online feature row (not materialized?)")
    if not ready.empty:
        proba = model.predict_proba(ready[features].to_numpy())[:, 1]
        scored = pd.DataFrame({"symbol": ready["symbol"], "p_up_next_day": proba})
        print(scored.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
