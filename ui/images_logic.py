"""The image tab's pure steps: sizes and presets, the LoRA table, building an ImageRequest
from the controls, and the per-session history entries. No gradio, no HTTP: tested alone."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from modelscope_api import catalog, wire
from modelscope_api.errors import ValidationError
from modelscope_api.images import LORA_ROWS_MAX, ImageRequest, lora_items, normalize_lora_weights

SIDE_STEP = 16  # every size we propose is a multiple of 16
RATIOS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "16:9": (16, 9), "9:16": (9, 16)}
LORA_ROWS_SHOWN = 3
HISTORY_MAX = 60  # gallery entries kept per session (oldest dropped)
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 3.5


# --------------------------------------------------------------------------- sizes


def clamp_side(value: Any, family: catalog.ImageFamily) -> int:
    """A side length inside the family's range (a non-number becomes the family default)."""
    try:
        side = int(round(float(value)))
    except (TypeError, ValueError, OverflowError):
        return family.default_side
    return max(family.min_side, min(family.max_side, side))


def _round16(x: float) -> int:
    return max(SIDE_STEP, int(round(x / SIDE_STEP)) * SIDE_STEP)


def preset_size(family: catalog.ImageFamily, ratio: str) -> tuple[int, int]:
    """(width, height) of `ratio` with about the area of the family's default square,
    both multiples of 16 and inside the family's range (long side shrunk first if needed)."""
    a, b = RATIOS[ratio]
    area = family.default_side**2
    w, h = math.sqrt(area * a / b), math.sqrt(area * b / a)
    if max(w, h) > family.max_side:
        scale = family.max_side / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) < family.min_side:
        scale = family.min_side / min(w, h)
        w, h = w * scale, h * scale
    w, h = _round16(w), _round16(h)
    lo, hi = family.min_side, family.max_side
    return max(lo, min(hi, w)), max(lo, min(hi, h))


# --------------------------------------------------------------------------- LoRA table


def table_rows(table: Any) -> list[list[Any]]:
    """A Dataframe value (list of lists, pandas frame, or {"data": …}) → list of [id, weight]."""
    if table is None:
        return []
    if isinstance(table, dict):
        table = table.get("data") or []
    if hasattr(table, "values") and hasattr(table, "columns"):  # pandas
        table = table.values.tolist()
    if not isinstance(table, (list, tuple)):
        raise ValidationError("loras", table, "a table of LoRA repo ids and weights", kind="type")
    if len(table) > LORA_ROWS_MAX:  # a raw call may send a million rows; the page shows three
        raise ValidationError("loras", f"{len(table)} rows", f"at most {wire.LORAS_MAX} LoRAs",
                              kind="too_many", limit=wire.LORAS_MAX)
    rows = []
    for row in table:
        if not isinstance(row, (list, tuple)):
            raise ValidationError("loras", row, "rows of a LoRA repo id and a weight", kind="type")
        row = list(row) + [None, None]
        repo, weight = row[0], row[1]
        if isinstance(weight, float) and math.isnan(weight):
            weight = None
        rows.append(["" if repo is None else str(repo), weight])
    return rows


def table_loras(table: Any) -> list[tuple[str, float | None]]:
    """The table's non-empty rows as (repo id, weight); ValidationError for a bad cell."""
    return lora_items(table_rows(table))


def loras_table(loras: Any, min_rows: int = LORA_ROWS_SHOWN) -> list[list[Any]]:
    """Any LoRA form → rows for the Dataframe, padded with blank rows."""
    rows: list[list[Any]] = [[repo, weight] for repo, weight in lora_items(loras)]
    while len(rows) < min_rows:
        rows.append(["", None])
    return rows


def normalised_table(table: Any) -> list[list[Any]]:
    return loras_table(normalize_lora_weights(table_rows(table)))


# --------------------------------------------------------------------------- request


def parse_urls(text: str | None) -> list[str]:
    if text is not None and not isinstance(text, str):
        raise ValidationError("image_url", text, "image URLs, one per line", kind="type")
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def new_seed() -> int:
    return random.SystemRandom().randint(wire.SEED_MIN, wire.SEED_MAX)


def _number(value: Any) -> Any:
    """Numbers from the UI: floats that are whole become ints; blanks become None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def settings_from_controls(
    prompt, negative_prompt, model, width, height, use_defaults, steps, guidance, seed,
    randomize_seed, lora_table, image_urls_text,
) -> dict[str, Any]:
    """The controls as a JSON-safe dict (what "reuse settings" restores)."""
    model = model.strip() if isinstance(model, str) else model  # not text: validate() names it
    if randomize_seed:
        seed = new_seed()
    return {
        "prompt": prompt or "",
        "negative_prompt": negative_prompt or "",
        "model": model,
        "width": _number(width),
        "height": _number(height),
        "use_defaults": bool(use_defaults),
        "steps": _number(steps),
        "guidance": _number(guidance),
        "seed": _number(seed),
        "loras": [list(r) for r in table_rows(lora_table) if r[0].strip() or r[1] not in (None, "")],
        "image_urls": parse_urls(image_urls_text) if catalog.is_edit_model(model) else [],
    }


def request_from_settings(settings: dict[str, Any], upload_urls: Sequence[str] = ()) -> ImageRequest:
    """An ImageRequest, validated: raises ValidationError naming the field before anything is
    sent. `upload_urls` are the checked uploads as data: URLs (used by edit models only)."""
    model = settings["model"]
    edit = catalog.is_edit_model(model)
    images = list(settings.get("image_urls") or []) + (list(upload_urls) if edit else [])
    req = ImageRequest(
        model=model,
        prompt=settings["prompt"],
        negative_prompt=settings.get("negative_prompt") or None,
        width=settings.get("width"),
        height=settings.get("height"),
        seed=settings.get("seed"),
        steps=None if settings.get("use_defaults") else settings.get("steps"),
        guidance=None if settings.get("use_defaults") else settings.get("guidance"),
        loras=table_loras(settings.get("loras")) or None,
        image_url=images or None,
    )
    req.validate()
    return req


def request_from_api(
    model, prompt, negative_prompt=None, width=None, height=None, seed=None, steps=None,
    guidance=None, loras=None, image_url=None, randomize_seed=False,
) -> ImageRequest:
    """The public endpoint's wire-named arguments → a validated ImageRequest."""
    if randomize_seed:
        seed = new_seed()
    if isinstance(image_url, str):
        image_url = parse_urls(image_url) or None
    req = ImageRequest(  # wrong types pass through untouched: validate() names them
        model=model.strip() if isinstance(model, str) else model, prompt="" if prompt is None else prompt,
        negative_prompt=negative_prompt or None,
        width=_number(width), height=_number(height), seed=_number(seed), steps=_number(steps),
        guidance=_number(guidance), loras=loras or None, image_url=image_url or None,
    )
    if (req.width is None) != (req.height is None):
        fam = req.family
        req.width = req.width if req.width is not None else fam.default_side
        req.height = req.height if req.height is not None else fam.default_side
    req.validate()
    return req


# --------------------------------------------------------------------------- history


def caption(seed: Any, model: str, size: str | None) -> str:
    return f"seed {seed if seed is not None else '?'} · {model} · {size or 'default size'}"


def gallery_value(history: Sequence[dict]) -> list[tuple[str, str]]:
    return [(e["image"], e["caption"]) for e in history]


def restore_values(settings: dict[str, Any]) -> dict[str, Any]:
    """What each control gets back from a history entry's settings."""
    fam = catalog.image_family(settings.get("model") or "")
    return {
        "prompt": settings.get("prompt", ""),
        "negative_prompt": settings.get("negative_prompt", ""),
        "model": settings.get("model") or catalog.DEFAULT_IMAGE_MODEL,
        "width": clamp_side(settings.get("width") or fam.default_side, fam),
        "height": clamp_side(settings.get("height") or fam.default_side, fam),
        "family": fam,
        "use_defaults": bool(settings.get("use_defaults")),
        "steps": settings.get("steps") or DEFAULT_STEPS,
        "guidance": settings.get("guidance") or DEFAULT_GUIDANCE,
        "seed": settings.get("seed"),
        "loras": loras_table(settings.get("loras")),
        "image_urls": "\n".join(settings.get("image_urls") or []),
    }
