"""finfeast's Feast plugins, named by `type:` in feature_repo/feature_store*.yaml (docs/architecture.md)."""
