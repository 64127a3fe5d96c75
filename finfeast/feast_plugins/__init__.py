"""finfeast's Feast plugins, selected in `feature_repo/feature_store*.yaml` (`type:`, `provider:`,
`registry_store_type:`).

- `online.FinfeastRedisOnlineStore` / `online.FinfeastSqliteOnlineStore`: Feast's Redis and
  SQLite online stores with a lean read path, an atomic newer-wins writer, real field statuses
  and a format every process writes identically (`encoding`: one key builder, one dtype map).
- `offline.FinfeastDuckDBOfflineStore`: Feast's DuckDB offline store with the as-of join, one
  shared latest-row scan for materialization, and Parquet part directories / missing sources.
- `provider.FinfeastProvider`: Feast's `local` provider whose `ingest_df` (push,
  write_to_online_store) hands frames to the online-store plugins as columns (`frames`).
- `registry.FinfeastFileRegistryStore`: Feast's file registry store, one parsed registry while
  the file is unchanged (Feast's per-object caches survive a push's registry re-read).
"""
