"""One module per CLI sub-command group; each has `register(subparsers, common)`.

Handlers have the signature `handler(args, settings) -> int | None` and import heavy packages
(Feast, pandas, Kafka) inside the function, never at module level.
"""
