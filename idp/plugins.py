"""Typed configuration of plug-ins (step-up factors, connectors): a TOML table to the
plug-in's frozen ``Config`` dataclass, every problem reported with where it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def config_of(cls: type, raw: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    """``cls(**raw)`` for a plug-in's frozen ``Config`` (``where``: its config section, for
    the messages), every problem reported."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            continue
        default = known[key].default
        # No default, or None: the Config's own checks decide.
        expected = None if default is dataclasses.MISSING or default is None else type(default)
        if expected is tuple and isinstance(value, list):
            value = tuple(value)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML's `timeout = 5` means 5.0
        wrong_type = expected is not None and not isinstance(value, expected)
        if wrong_type or (expected is not None and isinstance(value, bool)
                          and expected is not bool):
            shown = expected.__name__ if expected is not None else "a value"
            problems.append(f"{where}.{key}: expected {shown}, got {value!r}")
            continue
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return None
