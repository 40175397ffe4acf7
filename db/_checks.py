"""Small validators shared by the data functions; each raises ``InvalidInput`` with one line."""

from __future__ import annotations

import math
import re
from typing import Any

from db.errors import InvalidInput

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def require_sha256(value: str, what: str) -> str:
    """``value`` if it is a lower-case 64-digit hex sha256, else ``InvalidInput``."""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise InvalidInput(f"{what}: {value!r} is not a sha256 (64 lower-case hex digits)")
    return value


def require_text(value: str, what: str, max_length: int) -> str:
    """``value`` stripped, if non-empty and at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what}: must be non-empty text, got {value!r}")
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(f"{what}: {len(value)} characters, at most {max_length} allowed")
    return value


def require_finite(value: Any, what: str) -> float:
    """``value`` as a float, if it is a finite real number (bools refused)."""
    if isinstance(value, (bool, str, bytes)):
        raise InvalidInput(f"{what}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{what}: {number} is not finite")
    return number


def plain(value: Any) -> Any:
    """``value`` with array-likes (anything with ``tolist``) turned into plain lists for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
