"""`finfeast catalog` sub-command (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("catalog", parents=[common], help="(not implemented yet)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: object) -> int:
    from finfeast.errors import FinfeastError

    raise FinfeastError("'finfeast catalog' is not implemented yet")
