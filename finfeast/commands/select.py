"""`finfeast select` (honest feature selection -> a new `feature_repo/services/price_model_v<n>.yaml`
to commit) and `finfeast versions` (check / bump `feature_repo/versions.yaml`).

Import-light: pandas, scikit-learn and Feast are imported inside the handlers.
"""

from __future__ import annotations

import argparse

from finfeast.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "select",
        parents=[common],
        help="honest feature selection -> feature_repo/services/price_model_v<n>.yaml + report",
        description="Holds out the latest 20%% of the rows (after a purge gap >= the label "
        "horizon), then walk-forward (expanding window, purged) gradient boosting on the rest "
        "with permutation importance and correlation pruning inside training windows only. Writes "
        "the next price_model_v<n> FeatureService as a YAML file to commit (never overwriting a "
        "version; nothing is written when the selected list equals the latest), a JSON + PNG "
        "report with the held-out, walk-forward and naive shuffled-split AUCs, then feast apply.",
    )
    p.add_argument(
        "--horizon", type=int, default=5, choices=(1, 5, 20), help="label horizon in days"
    )
    p.add_argument("--folds", type=int, default=5, help="walk-forward folds (default 5)")
    p.add_argument(
        "--embargo", type=int, default=0, help="extra gap sessions on top of the horizon"
    )
    p.add_argument(
        "--holdout", type=float, default=0.2, help="held-out share of the rows (default 0.2)"
    )
    p.add_argument("--max-features", type=int, default=20, help="at most this many features")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--no-apply", action="store_true", help="write the service file but do not feast apply"
    )
    p.set_defaults(handler=_select)

    p = sub.add_parser(
        "versions",
        parents=[common],
        help="check feature_repo/versions.yaml against the code, or bump changed families",
        description="check: every family's code hash equals its committed one (exit 1 if not). "
        "bump FAMILY...: give each changed family the next version and its current hash; "
        "commit feature_repo/versions.yaml with the code (rollback = git revert).",
    )
    p.add_argument("action", choices=("check", "bump"))
    p.add_argument("families", nargs="*", help="families to bump (default: every changed one)")
    p.set_defaults(handler=_versions)


def _select(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.errors import FinfeastError
    from transforms.selection import SelectionConfig, run_selection

    if args.folds < 2:
        raise FinfeastError("--folds must be at least 2")
    if not 0 < args.holdout < 0.5:
        raise FinfeastError("--holdout must be between 0 and 0.5")
    symbols = tuple(s.strip() for s in args.symbols.split(",")) if args.symbols else None
    config = SelectionConfig(
        horizon=args.horizon,
        n_folds=args.folds,
        embargo=args.embargo,
        holdout_fraction=args.holdout,
        max_features=args.max_features,
        symbols=symbols,
        random_state=args.seed,
    )
    result = run_selection(settings, config)
    print(result)
    print(f"selected: {', '.join(result.features)}")
    if result.service_file is not None:
        print(f"new feature service file to commit: {result.service_file}")
    print(f"plot: {result.report_png}")
    if not args.no_apply:
        from finfeast.store import apply_repo

        print(apply_repo(settings))
    return 0


def _versions(args: argparse.Namespace, settings: Settings) -> int:
    from transforms import catalog
    from transforms.versioning import bump, check_versions, load_versions, versions_path

    path = versions_path(settings.repo_path)
    if args.action == "check":
        problems = check_versions(load_versions(path), catalog.FAMILIES.values())
        print("\n".join(problems) or f"{path}: every family matches its code")
        return 1 if problems else 0
    committed = load_versions(path)
    names = args.families or [
        n
        for n, f in catalog.FAMILIES.items()
        if committed.get(n, {}).get("code_hash") != f.code_hash
    ]
    changed = bump(path, names, catalog.FAMILIES)
    for name, version in changed.items():
        print(f"{name}: v{version} ({catalog.FAMILIES[name].code_hash})")
    if not changed:
        print(f"{path}: every family matches its code, nothing to bump")
        return 0
    print(f"{path}: {len(changed)} famil{'y' if len(changed) == 1 else 'ies'} bumped; commit it")
    return 0
