"""Daily feature views, generated from the transforms catalog: one view per feature family.

A feature is named once, in `transforms.catalog`; the views' schemas are derived from it, so adding
a feature to the catalog adds it here on the next `feast apply`. Every view reads the one wide
`features_daily` table; grouping by family keeps views small and lets a family be versioned alone.
"""

from datetime import timedelta
from pathlib import Path

from data_sources import features_daily_source
from entities import symbol
from feast import FeatureView, Field
from feast.types import Float64, Int64

from transforms import catalog
from transforms.versioning import load_versions

# A daily value older than this is stale: weekends and exchange holidays fit inside it.
DAILY_TTL = timedelta(days=10)

# The committed version and code hash of each family (versions.yaml next to this file, reviewed
# like code; tests/transforms/test_versioning.py fails when a family's code changes without a bump).
# A bump shows in `feast plan` as a tag diff and `feast apply` records it in the registry. A family
# not yet in the file (work in progress) gets the catalog's declared version and current hash.
COMMITTED_VERSIONS = load_versions(Path(__file__).with_name("versions.yaml"))

_DTYPES = {"float64": Float64, "int64": Int64}


def _daily_view(family: catalog.FamilySpec) -> FeatureView:
    committed = COMMITTED_VERSIONS.get(family.name, {})
    return FeatureView(
        name=f"daily_{family.name}",
        entities=[symbol],
        ttl=DAILY_TTL,
        schema=[
            Field(name=f.name, dtype=_DTYPES[f.dtype], description=f.description)
            for f in family.features
        ],
        source=features_daily_source,
        online=True,
        description=family.description,
        tags={
            "family": family.name,
            "family_version": str(committed.get("version", family.version)),
            "kind": family.kind,
            "source_tables": ",".join(family.source_tables),
            "code_hash": committed.get("code_hash") or family.code_hash,
        },
    )


DAILY_VIEWS: dict[str, FeatureView] = {
    name: _daily_view(fam) for name, fam in catalog.FAMILIES.items()
}

# Feast discovers objects as module attributes.
globals().update({view.name: view for view in DAILY_VIEWS.values()})


def projections(feature_names: list[str]) -> list:
    """Feature view projections selecting exactly `feature_names`, grouped by family view."""
    by_family: dict[str, list[str]] = {}
    for name in feature_names:
        by_family.setdefault(catalog.family_of(name), []).append(name)
    return [DAILY_VIEWS[fam][names] for fam, names in by_family.items()]
