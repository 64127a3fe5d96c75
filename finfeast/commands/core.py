"""Core sub-commands: `run` (the main job), `apply`, `materialize`, `env`."""

from __future__ import annotations

import argparse
import shlex

from finfeast.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="the main job: ingest -> validate -> features -> feast apply -> materialize -> summary",
        description="Run the whole pipeline on the selected profile and print a summary table, "
        "one sample get_online_features result and the head of a get_historical_features training set.",
    )
    p.add_argument(
        "--sources", help="comma-separated source names to ingest (default: all available)"
    )
    p.add_argument("--skip-stream", action="store_true", help="skip the short stream replay stage")
    p.set_defaults(handler=_run)

    p = sub.add_parser(
        "apply", parents=[common], help="feast apply: register the feature repo definitions"
    )
    p.set_defaults(handler=_apply)

    p = sub.add_parser(
        "plan", parents=[common], help="feast plan: show what `apply` would change in the registry"
    )
    p.set_defaults(handler=_plan)

    p = sub.add_parser(
        "materialize",
        parents=[common],
        help="load the latest feature values from the offline store into the online store",
    )
    p.add_argument("--start", help="ISO start time (default: incremental since the last run)")
    p.add_argument("--end", help="ISO end time (default: now)")
    p.add_argument("--views", help="comma-separated feature view names (default: all)")
    p.set_defaults(handler=_materialize)

    p = sub.add_parser(
        "env",
        parents=[common],
        help='print the resolved settings as shell exports (eval "$(finfeast env)" before plain `feast`)',
    )
    p.set_defaults(handler=_env)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.pipeline import run_main_job

    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    return run_main_job(settings, sources=sources, stream=not args.skip_stream)


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.store import apply_repo

    summary = apply_repo(settings)
    print(summary)
    return 0


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.store import plan_repo

    print(plan_repo(settings))
    return 0


def _materialize(args: argparse.Namespace, settings: Settings) -> int:
    from finfeast.store import materialize

    views = [v.strip() for v in args.views.split(",")] if args.views else None
    print(materialize(settings, start=args.start, end=args.end, views=views))
    return 0


def _env(args: argparse.Namespace, settings: Settings) -> int:
    for k, v in settings.env().items():
        print(f"export {k}={shlex.quote(v)}")
    print(f"# then: feast -c {settings.repo_path} -f {settings.feature_store_yaml} plan")
    return 0
