"""finfeast feature transforms: the catalog (batch + online, one definition per family), labels,
context features, feature tables and selection.

`import transforms` and `import transforms.catalog` stay cheap: the compiled engine is imported on
first use of `compute_features`, `OnlineFeatures` or `OnlineFeaturesBatch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transforms.adjustments import ActionBook
    from transforms.batch import compute_features
    from transforms.online import OnlineFeatures, OnlineFeaturesBatch
    from transforms.validation import InvalidBarsError

__all__ = [
    "ActionBook",
    "compute_features",
    "OnlineFeatures",
    "OnlineFeaturesBatch",
    "InvalidBarsError",
]

_LAZY = {
    "ActionBook": "transforms.adjustments",
    "compute_features": "transforms.batch",
    "OnlineFeatures": "transforms.online",
    "OnlineFeaturesBatch": "transforms.online",
    "InvalidBarsError": "transforms.validation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transforms' has no attribute {name!r}")
