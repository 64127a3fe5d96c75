"""`finfeast catalog`: list and search the features registered in the Feast registry.

    finfeast catalog                          every feature (name, view, family, version, ...)
    finfeast catalog search "wilder"          words must all match name/view/family/description/tags
    finfeast catalog list --family trend --tag kind=bar --version 1 --service daily_v1 --json

Import-light: the registry (and Feast) is only loaded inside the handler.
"""

from __future__ import annotations

import argparse

from finfeast.config import Settings

DESCRIPTION_WIDTH = 60


FILTER_DEFAULTS = {
    "family": None,
    "tag": [],
    "version": None,
    "service": None,
    "json": False,
    "wide": False,
}


def _filter_options() -> argparse.ArgumentParser:
    """Filters accepted before and after `list`/`search` (SUPPRESS: a later parser never resets)."""
    f = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    f.add_argument("--family", help="only this feature family (e.g. trend, returns)")
    f.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="only features whose view/field tags contain KEY=VALUE (repeatable)",
    )
    f.add_argument("--version", help="only this family/view version (e.g. 1 or v1)")
    f.add_argument("--service", help="only features selected by this feature service")
    f.add_argument("--json", action="store_true", help="print JSON (one object per feature)")
    f.add_argument("--wide", action="store_true", help="do not shorten descriptions")
    return f


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    # A fresh filter parser per parser: parents share action objects, and set_defaults below
    # rewrites the defaults of the actions it owns (they must stay SUPPRESS in list/search).
    p = sub.add_parser(
        "catalog",
        parents=[common, _filter_options()],
        help="list and search features in the Feast registry (name, family, tags, version)",
        description="Feature discovery from the Feast registry of the profile (run `finfeast "
        "apply` first). `list` (the default) shows every feature; `search TEXT` keeps features "
        "whose name, view, family, description or tags contain every word of TEXT. "
        "Exit code 1 when nothing matches.",
    )
    p.set_defaults(handler=_run, text=None, **FILTER_DEFAULTS)
    actions = p.add_subparsers(dest="action", metavar="{list,search}")
    actions.add_parser(
        "list", parents=[common, _filter_options()], help="every feature (with filters)"
    )
    s = actions.add_parser(
        "search", parents=[common, _filter_options()], help="features matching every word of TEXT"
    )
    s.add_argument("text", nargs="+", help="search words")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(entries: list, wide: bool = False) -> str:
    """Aligned plain-text table of `FeatureEntry` rows (no terminal-width magic: pipes well)."""
    headers = ("feature", "view", "family", "version", "dtype", "services", "description")
    rows = [
        (
            e.name,
            e.view,
            e.family,
            e.version,
            e.dtype,
            ",".join(e.services) or "-",
            e.description if wide else _shorten(e.description, DESCRIPTION_WIDTH),
        )
        for e in entries
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from finfeast.discovery import load_entries, parse_tag_filters, search

    tags = parse_tag_filters(args.tag)
    entries = load_entries(settings)
    hits = search(
        entries,
        text=" ".join(args.text) if args.text else None,
        family=args.family,
        tags=tags,
        version=args.version,
        service=args.service,
    )
    if args.json:
        print(json.dumps([e.to_dict() for e in hits], indent=2))
        return 0
    if hits:
        print(format_table(hits, wide=args.wide))
    print(f"{len(hits)} of {len(entries)} features in project {settings.project}")
    return 0 if hits else 1
