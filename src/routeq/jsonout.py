"""JSON for programs reading routeq's output (``--json``, the JSONL results file).

Money is a JSON number: a consumer sums and compares costs, and a string such as ``"0E-10"``
(how Python spells a ten-decimal zero) is neither. Costs carry ten decimals of USD, well inside
a double's precision, so a float loses nothing a reader can see. Ids and timestamps are strings.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with every Decimal a float and every id, time and path a string, recursively."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    return value


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text for ``value`` (see :func:`plain`); non-ASCII text is kept as written."""
    return json.dumps(plain(value), ensure_ascii=False, indent=indent)
