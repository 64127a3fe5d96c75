"""Serving: the tuned feature server, a lean Redis read path, hot-entity cache, serving logs,
serving-log audit and data-quality monitoring. See docs/serving.md.

Modules import Feast lazily (the CLI imports `finfeast.commands.serve` for `--help`).
"""
