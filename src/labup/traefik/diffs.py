"""What changes: the Helm values (and, when the chart is at hand, the manifest) as unified diffs,
and the one comparison that decides whether the release is converged."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

import yaml


def comparable(values: Any) -> Any:
    """The values as helm keeps them, for comparing: JSON-shaped, integral floats as ints, and no
    null map values. Helm drops a null once the chart's defaults have a table at that place and
    keeps it otherwise, so `get values` may or may not show the nulls labup passed: comparing
    without them on both sides is the only stable answer. (A null means "delete the chart's
    default"; a deployed release that lacks a key labup nulls would be seen as converged. The dry
    run's manifest diff shows such a difference when the chart is at hand.)"""
    if isinstance(values, Mapping):
        return {str(k): comparable(v) for k, v in values.items() if v is not None}
    if isinstance(values, list | tuple):
        return [comparable(v) for v in values]
    if isinstance(values, float) and values.is_integer():
        return int(values)
    return values


def yaml_text(values: Any) -> str:
    """Sorted keys: helm returns its values sorted, so both sides of a diff must be."""
    if not values:
        return ""
    return yaml.safe_dump(json.loads(json.dumps(values)), sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=120)


def unified(old: str, new: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=old_label, tofile=new_label, n=3)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


def values_diff(deployed: Any, desired: Any, old_label: str, new_label: str = "values labup applies") -> str:
    return unified(yaml_text(comparable(deployed)), yaml_text(comparable(desired)), old_label, new_label)


def manifest_diff(deployed: str, rendered: str, old_label: str) -> str:
    return unified(_strip(deployed), _strip(rendered), old_label, "manifest labup would install (helm template)")


def _strip(manifest: str) -> str:
    return "\n".join(line.rstrip() for line in manifest.strip().splitlines()) + "\n" if manifest.strip() else ""
