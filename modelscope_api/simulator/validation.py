"""The image request checks of the official parameter table (limits from wire, families from
catalog). Each problem is a 400 whose message names the field."""

from __future__ import annotations

import math
import re
from typing import Any

from .. import catalog, wire


class BadParam(ValueError):
    """A 400 with this message."""


_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_URL_PREFIXES = ("http://", "https://", "data:")

# Defaults the simulated server fills in (reported back in the poll's "input").
DEFAULT_STEPS = {"SD": 30, "FLUX": 30, "Qwen-Image": 30, "Z-Image-Turbo": 9}
DEFAULT_GUIDANCE = {"SD": 7.5, "FLUX": 3.5, "Qwen-Image": 4.0, "Z-Image-Turbo": 1.5}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _bad(field: str, why: str) -> BadParam:
    return BadParam(f"Invalid parameter '{field}': {why}")


def parse_size(value: Any, family: catalog.ImageFamily) -> tuple[int, int]:
    lo, hi = family.min_side, family.max_side
    allowed = f"'WxH' with each side from {lo} to {hi} for {family.name} models"
    if not isinstance(value, str):
        raise _bad("size", f"{value!r} must be a string {allowed}")
    m = _SIZE_RE.match(value)
    if not m:
        raise _bad("size", f"{value!r} is not {allowed}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (lo <= w <= hi and lo <= h <= hi):
        raise _bad("size", f"{value!r} is out of range; must be {allowed}")
    return w, h


def validate_image_request(body: dict, known_models: set[str]) -> dict:
    """The cleaned parameters (size as (w, h) or None for the default); raises BadParam."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model", "a model id is required")
    if model not in known_models:
        raise BadParam(wire.MSG_NO_PROVIDER.format(model=model))
    family = catalog.image_family(model)
    out: dict[str, Any] = {"model": model, "family": family}

    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad("prompt", "is required and must be a non-empty string")
    if len(prompt) >= wire.PROMPT_MAX_CHARS:
        raise _bad(
            "prompt", f"must be fewer than {wire.PROMPT_MAX_CHARS} characters, got {len(prompt)}"
        )
    out["prompt"] = prompt

    neg = body.get("negative_prompt")
    if neg is not None:
        if not isinstance(neg, str):
            raise _bad("negative_prompt", "must be a string")
        if len(neg) >= wire.PROMPT_MAX_CHARS:
            raise _bad(
                "negative_prompt",
                f"must be fewer than {wire.PROMPT_MAX_CHARS} characters, got {len(neg)}",
            )
        out["negative_prompt"] = neg

    size = body.get("size")
    out["size"] = None if size is None else parse_size(size, family)

    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed) or not wire.SEED_MIN <= seed <= wire.SEED_MAX:
            raise _bad(
                "seed", f"{seed!r} must be an integer from {wire.SEED_MIN} to {wire.SEED_MAX}"
            )
    out["seed"] = seed

    steps = body.get("steps")
    if steps is not None:
        if not _is_int(steps) or not wire.STEPS_MIN <= steps <= wire.STEPS_MAX:
            raise _bad(
                "steps", f"{steps!r} must be an integer from {wire.STEPS_MIN} to {wire.STEPS_MAX}"
            )
    out["steps"] = steps if steps is not None else DEFAULT_STEPS[family.name]

    guidance = body.get("guidance")
    if guidance is not None:
        if not _is_num(guidance) or not wire.GUIDANCE_MIN <= guidance <= wire.GUIDANCE_MAX:
            raise _bad(
                "guidance",
                f"{guidance!r} must be a number from {wire.GUIDANCE_MIN} to {wire.GUIDANCE_MAX}",
            )
    out["guidance"] = guidance if guidance is not None else DEFAULT_GUIDANCE[family.name]

    loras = body.get("loras")
    if loras is not None:
        out["loras"] = _check_loras(loras)

    image_url = body.get("image_url")
    urls: list[str] = []
    if image_url is not None:
        if isinstance(image_url, str):
            urls = [image_url]
        elif isinstance(image_url, list) and image_url:
            urls = image_url
        else:
            raise _bad("image_url", "must be a URL string or a non-empty list of URL strings")
        for u in urls:
            if not isinstance(u, str) or not u.strip().startswith(_URL_PREFIXES):
                raise _bad("image_url", f"{str(u)[:60]!r} must be an http(s) URL or a data: URL")
        out["image_url"] = image_url
    if catalog.is_edit_model(model) and not urls:
        raise _bad("image_url", f"model {model} edits an image: image_url is required")
    out["image_urls"] = [u.strip() for u in urls]
    return out


def _check_loras(loras: Any) -> Any:
    if isinstance(loras, str):
        if not loras.strip():
            raise _bad("loras", "a LoRA repo id must be non-empty")
        return loras
    if not isinstance(loras, dict):
        raise _bad("loras", 'must be a repo id string or an object {"<repo id>": weight, ...}')
    if not loras:
        raise _bad("loras", "must name at least one LoRA")
    if len(loras) > wire.LORAS_MAX:
        raise _bad("loras", f"at most {wire.LORAS_MAX} LoRAs, got {len(loras)}")
    for key, weight in loras.items():
        if not isinstance(key, str) or not key.strip():
            raise _bad("loras", "LoRA repo ids must be non-empty")
        if not _is_num(weight):
            raise _bad("loras", f"weight of {key!r} must be a number, got {weight!r}")
    total = sum(loras.values())
    if abs(total - wire.LORA_WEIGHT_SUM) > wire.LORA_WEIGHT_TOLERANCE:
        raise _bad("loras", f"weights must sum to {wire.LORA_WEIGHT_SUM}, got {total:g}")
    return loras
