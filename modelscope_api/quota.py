"""The modelscope-ratelimit-* headers, read into one small object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from . import wire


def _int_or_none(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Quota:
    requests_limit: int | None = None  # per user per day
    requests_remaining: int | None = None
    model_requests_limit: int | None = None  # per model per day
    model_requests_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> Quota | None:
        """None when the response carried none of the headers."""
        if not headers:
            return None
        lower = {str(k).lower(): v for k, v in headers.items()}
        quota = cls(
            _int_or_none(lower.get(wire.RATELIMIT_REQUESTS_LIMIT)),
            _int_or_none(lower.get(wire.RATELIMIT_REQUESTS_REMAINING)),
            _int_or_none(lower.get(wire.RATELIMIT_MODEL_REQUESTS_LIMIT)),
            _int_or_none(lower.get(wire.RATELIMIT_MODEL_REQUESTS_REMAINING)),
        )
        return None if quota == cls() else quota

    def to_dict(self) -> dict:
        return asdict(self)
