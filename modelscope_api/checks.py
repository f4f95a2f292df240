"""Checks every request field goes through before anything is sent: text that can really be
sent, numbers that really are numbers in range. Each failure is a ValidationError naming the
field, what kind of value came and what is allowed (facts; the UI words them).

Values may come from anyone (a raw HTTP call to a public Space): huge integers, wrong types,
lone surrogates, NUL characters. None of them may reach the wire or crash a handler.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ValidationError

# Bounds on what any request may carry, beyond the official table: a model id is a short
# repo name; an inline picture (data: URL) is at most MAX_IMAGE_BYTES, base64-encoded.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MODEL_ID_MAX_CHARS = 200
IMAGE_URL_MAX_CHARS = (MAX_IMAGE_BYTES * 4) // 3 + 1024

# Characters no request field may hold: NUL (cut off by many C-string layers, and makes a
# generated script unreadable) and lone UTF-16 surrogates (cannot be encoded as UTF-8 JSON).
_NUL = "\x00"


def check_text(field: str, value: Any, *, required: bool = True, max_chars: int | None = None,
               allowed: str = "a text") -> str:
    """`value` as sendable text (not stripped). Raises ValidationError when it is not text,
    is empty (if required), is too long, or holds a NUL or a lone surrogate."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, value, allowed, kind="type")
    if required and not value.strip():
        raise ValidationError(field, value, allowed, kind="empty")
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(field, f"{len(value)} characters", f"at most {max_chars} characters",
                              kind="too_long", limit=max_chars)
    if _NUL in value:
        raise ValidationError(field, "text with a NUL character", "text without control characters",
                              kind="bad_characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, "text with a broken character", "text in valid Unicode",
                              kind="bad_characters") from None
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(field: str, value: Any, lo: float, hi: float, *, whole: bool = False,
                 allowed: str | None = None) -> int | float:
    """`value` if it is a (whole) number from lo to hi; safe for huge ints, NaN and infinities."""
    what = "a whole number" if whole else "a number"
    allowed = allowed or f"{what} from {lo:g} to {hi:g}"
    if not is_number(value):
        raise ValidationError(field, value, allowed, kind="type", low=lo, high=hi)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(field, value, allowed, kind="range", low=lo, high=hi)
    # Compare before any float(): float(10**400) raises OverflowError.
    if not (lo <= value <= hi):
        raise ValidationError(field, value, allowed, kind="range", low=lo, high=hi)
    if whole and isinstance(value, float) and not value.is_integer():
        raise ValidationError(field, value, allowed, kind="type", low=lo, high=hi)
    return int(value) if whole else value
