"""Serving: Feast's feature server in tuned workers (metrics, serving logs), serving-log audit,
data-quality monitoring, lean point-in-time join. See docs/serving.md. The online read/write
paths themselves are Feast online-store plugins (`finfeast.feast_plugins.online`).

Modules import Feast lazily (the CLI imports `finfeast.commands.serve` for `--help`).
"""
