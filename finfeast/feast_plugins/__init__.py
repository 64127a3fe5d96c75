"""finfeast's Feast plugins, selected by `type:` in `feature_repo/feature_store*.yaml`.

- `online.FinfeastRedisOnlineStore` / `online.FinfeastSqliteOnlineStore`: Feast's Redis and
  SQLite online stores with a lean read path, an atomic newer-wins writer, real field statuses
  and a format every process writes identically (`encoding`: one key builder, one dtype map).
- `offline.FinfeastDuckDBOfflineStore`: Feast's DuckDB offline store with the as-of join, one
  shared latest-row scan for materialization, and Parquet part directories / missing sources.
"""
