"""Feature discovery: what features exist, what they mean, and where they are served.

Why read the Feast registry (not `transforms.catalog`): the registry is what models and the
feature server actually see after `feast apply` — including stream, on-demand and versioned views
and the feature services that select features. The catalog is the source the views are generated
from; the registry is the deployed truth. `finfeast catalog` prints these entries.

Views built outside the catalog's batch path (stream views computing catalog features
incrementally) often carry no per-field description or family tag: a feature whose name is in
`transforms.catalog` then takes its description and family from there, so `--family oscillators`
finds `rsi_14` in both the daily and the stream view.

Search is deliberately simple and predictable: every word of the query must appear
(case-insensitive) in the feature name, its view, family, description or tags; results are ranked
exact name > name prefix > name substring > elsewhere, then by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from finfeast.config import Settings
from finfeast.errors import FinfeastError

if TYPE_CHECKING:
    from feast import FeatureStore

VIEW_KINDS = {
    "StreamFeatureView": "stream",
    "OnDemandFeatureView": "on_demand",
    "FeatureView": "batch",
}


@dataclass(frozen=True)
class FeatureEntry:
    """One feature of one registered view, with what a user needs to find and trust it."""

    name: str
    view: str
    kind: str  # batch | stream | on_demand
    family: str
    version: str
    dtype: str
    description: str
    entities: tuple[str, ...]
    services: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """The `view:feature` reference `get_online_features(features=[...])` accepts."""
        return f"{self.view}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["entities"] = list(self.entities)
        d["services"] = list(self.services)
        d["tags"] = dict(self.tags)
        d["reference"] = self.reference
        return d


def _view_kind(view: object) -> str:
    for cls in type(view).__mro__:
        if cls.__name__ in VIEW_KINDS:
            return VIEW_KINDS[cls.__name__]
    return type(view).__name__


def _view_version(view: Any) -> str:
    """The family version tag the repo sets; else Feast's own view version (`v<n>` / latest)."""
    tags = view.tags or {}
    for key in ("family_version", "version"):
        if tags.get(key):
            return str(tags[key])
    number = getattr(view, "current_version_number", None)
    if number is not None:
        return f"v{number}"
    return str(getattr(view, "version", "") or "latest")


def _catalog_specs() -> dict[str, Any]:
    """name -> FeatureSpec of the transforms catalog (empty if the catalog cannot be imported)."""
    try:
        from transforms import catalog
    except ImportError:
        return {}
    return {spec.name: spec for spec in catalog.all_features()}


def _service_index(store: FeatureStore) -> dict[tuple[str, str], list[str]]:
    """(view, feature) -> names of the feature services that select it."""
    index: dict[tuple[str, str], list[str]] = {}
    for service in store.list_feature_services():
        for projection in service.feature_view_projections:
            for feat in projection.features:
                index.setdefault((projection.name, feat.name), []).append(service.name)
    return index


def entries_from_store(store: FeatureStore) -> list[FeatureEntry]:
    """Every feature of every registered view (batch, stream, on-demand), sorted by name."""
    services = _service_index(store)
    specs = _catalog_specs()
    entries: list[FeatureEntry] = []
    for view in store.list_all_feature_views():
        view_tags = dict(view.tags or {})
        version = _view_version(view)
        entities = tuple(getattr(view, "entities", None) or ())
        kind = _view_kind(view)
        for feat in view.features:
            tags = {**view_tags, **(feat.tags or {})}
            spec = specs.get(feat.name)
            family = view_tags.get("family") or (spec.family if spec else view.name)
            description = feat.description or (spec.description if spec else "")
            entries.append(
                FeatureEntry(
                    name=feat.name,
                    view=view.name,
                    kind=kind,
                    family=family,
                    version=version,
                    dtype=str(feat.dtype),
                    description=description or view.description or "",
                    entities=entities,
                    services=tuple(sorted(services.get((view.name, feat.name), ()))),
                    tags=tags,
                )
            )
    return sorted(entries, key=lambda e: (e.name, e.view))


def load_entries(settings: Settings) -> list[FeatureEntry]:
    """Entries of the profile's registry; a clear error when nothing has been applied yet."""
    from finfeast.store import get_store

    store = get_store(settings)
    try:
        entries = entries_from_store(store)
    except FinfeastError:
        raise
    except Exception as exc:  # the registry backend raises its own types (file, SQL)
        raise FinfeastError(f"cannot read the Feast registry of {settings.project}: {exc}") from exc
    if not entries:
        raise FinfeastError(
            f"the Feast registry of project {settings.project!r} ({settings.profile} profile) "
            "has no feature views: run `finfeast apply` first"
        )
    return entries


def parse_tag_filters(raw: Iterable[str]) -> dict[str, str]:
    """`["k=v", ...]` -> dict; a filter without '=' is a user error."""
    tags: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FinfeastError(f"--tag expects key=value, got {item!r}")
        tags[key.strip()] = value.strip()
    return tags


def _normalize_version(value: str) -> str:
    v = value.strip().lower()
    return v[1:] if v.startswith("v") and v[1:].isdigit() else v


def _haystack(entry: FeatureEntry) -> str:
    parts = [entry.name, entry.view, entry.family, entry.description, entry.kind]
    parts += [f"{k}={v}" for k, v in entry.tags.items()]
    return " ".join(parts).lower()


def _rank(entry: FeatureEntry, words: list[str]) -> int:
    name = entry.name.lower()
    if " ".join(words) == name:
        return 0
    if any(name.startswith(w) for w in words):
        return 1
    if any(w in name for w in words):
        return 2
    return 3


def search(
    entries: Iterable[FeatureEntry],
    text: str | None = None,
    family: str | None = None,
    tags: Mapping[str, str] | None = None,
    version: str | None = None,
    service: str | None = None,
) -> list[FeatureEntry]:
    """Entries matching every given criterion; ranked by how well the name matches `text`."""
    words = (text or "").lower().split()
    wanted_version = _normalize_version(version) if version else None
    hits = []
    for entry in entries:
        if family and entry.family.lower() != family.lower():
            continue
        if tags and any(entry.tags.get(k) != v for k, v in tags.items()):
            continue
        if wanted_version and _normalize_version(entry.version) != wanted_version:
            continue
        if service and service not in entry.services:
            continue
        if words:
            hay = _haystack(entry)
            if not all(w in hay for w in words):
                continue
        hits.append(entry)
    return sorted(hits, key=lambda e: (_rank(e, words), e.name, e.view))
