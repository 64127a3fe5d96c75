"""The `finfeast` console command.

Import-light on purpose: `finfeast --help` and argument errors must answer in well under a second,
while `import feast` costs seconds. Each sub-command lives in a `finfeast.commands.*` module whose
`register()` adds its parser and whose handler imports the heavy packages only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from finfeast.config import PROFILES, load_settings
from finfeast.errors import FinfeastError

COMMAND_MODULES = (
    "finfeast.commands.core",
    "finfeast.commands.ingest",
    "finfeast.commands.features",
    "finfeast.commands.select",
    "finfeast.commands.stream",
    "finfeast.commands.serve",
    "finfeast.commands.catalog",
)

DESCRIPTION = """\
finfeast: a Feast feature repository for financial market data.

Typical use:
  finfeast run                      the whole main job (ingest -> features -> apply -> materialize)
  finfeast ingest                   load and validate every source into the offline store
  finfeast features                 compute the feature catalog into offline feature tables
  finfeast apply && finfeast materialize
  finfeast --profile prod run       the same against PostgreSQL + Redis

Settings come from FINFEAST_* environment variables (see `finfeast env` and README.md).
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile",
        choices=PROFILES,
        default=argparse.SUPPRESS,
        help="storage profile: local (Parquet/DuckDB + SQLite, default) or prod "
        "(PostgreSQL + Redis); overrides FINFEAST_PROFILE",
    )
    parser = argparse.ArgumentParser(
        prog="finfeast",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors in logs"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def _to_stderr(message: str) -> None:
    """The log sink: whatever `sys.stderr` is at write time, not the stream current when logging
    was configured (a command run in-process, as the tests do, must not leave threads logging
    into a stream that has since been closed)."""
    sys.stderr.write(message)


def _configure_logging(quiet: bool) -> None:
    import warnings

    from loguru import logger

    # Library deprecation chatter (ibis/duckdb, Feast's "experimental" notices) is not for users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    import finfeast.store

    finfeast.store.QUIET_LIBRARY_WARNINGS = True

    logger.remove()
    logger.add(
        _to_stderr,
        level="WARNING" if quiet else "INFO",
        format="{time:HH:mm:ss} {level: <7} {message}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(args.quiet)
        settings = load_settings(getattr(args, "profile", None))
        result = args.handler(args, settings)
        return int(result or 0)
    except FinfeastError as exc:
        print(f"finfeast: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("finfeast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
