"""TOML text for routeq's configuration, written by ``tomli-w``.

Used to hand a generated configuration to worker processes (the demo, tests) as a real file, the
same way an operator would. Quoting keys and escaping text is the library's job (a hand-written
writer once emitted user-chosen keys such as ``tâche`` bare, which TOML refuses); this module
only turns routeq's values into plain TOML ones first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import tomli_w


def _plain(value: Any) -> Any:
    """``value`` as TOML can hold it. Decimals become strings, so prices stay exact (pydantic
    reads a Decimal from a string; a TOML float would round through binary); ``None``, which
    TOML cannot spell, is left out of tables."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return str(value)
    return value


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for ``data``; ``None`` values are left out."""
    return tomli_w.dumps(_plain(data))
