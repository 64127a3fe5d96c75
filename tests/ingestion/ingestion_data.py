"""Data-directory helpers of the ingestion tests (a module with its own name: `from conftest
import ...` resolves to whichever conftest.py was imported last when the whole suite runs)."""

from __future__ import annotations

from pathlib import Path


def linked_data_dir(real: Path, target: Path, replace: dict[str, bytes | None]) -> Path:
    """A data dir of symlinks to the real files, with some files replaced (bytes) or removed (None)."""
    for src in real.rglob("*"):
        if src.is_dir():
            continue
        rel = src.relative_to(real).as_posix()
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel in replace:
            if replace[rel] is not None:
                dst.write_bytes(replace[rel])  # type: ignore[arg-type]
            continue
        dst.symlink_to(src)
    return target
