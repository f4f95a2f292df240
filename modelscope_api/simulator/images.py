"""Pillow helpers: draw a deterministic output PNG, and describe an input image.

Drawing is cheap on purpose (a 2048x2048 PNG in a fraction of a second): a two-colour
gradient drawn at 256x256 and scaled up, a few translucent shapes, and a caption with the
seed and the size. Everything random comes from a hash of the inputs, so the same request
always gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

# Basic colour names for "mostly <colour>" descriptions.
_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (220, 30, 30),
    "green": (30, 170, 30),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 40, 170),
    "pink": (250, 150, 190),
    "cyan": (30, 210, 220),
    "magenta": (220, 30, 200),
    "brown": (130, 80, 40),
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest basic colour name."""
    r, g, b = rgb[:3]
    return min(
        _COLOURS,
        key=lambda n: (
            (r - _COLOURS[n][0]) ** 2 + (g - _COLOURS[n][1]) ** 2 + (b - _COLOURS[n][2]) ** 2
        ),
    )


def decode_data_url(url: str) -> bytes | None:
    """The bytes of a base64 `data:` URL, or None if it is not one or does not decode."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        return None
    try:
        return base64.b64decode(payload.strip(), validate=False)
    except (binascii.Error, ValueError):
        return None


def oversized(urls: list[str], max_side: int) -> tuple[int, int] | None:
    """(width, height) of the first data: URL picture with a side over max_side, else None
    (the size as stored: the header is read, the pixels are not decoded; http(s) URLs and
    unreadable data are left to the other checks)."""
    for url in urls:
        data = decode_data_url(url)
        if not data:
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Exception:
            continue
        if max(width, height) > max_side:
            return width, height
    return None


def describe_image(data: bytes) -> tuple[str, int, int, str] | None:
    """(format, width, height, dominant colour name) or None if Pillow cannot read it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "image").upper()
            width, height = im.size
            small = im.convert("RGB")
            small.thumbnail((48, 48))
    except Exception:
        return None
    counts: dict[str, int] = {}
    for count, rgb in small.getcolors(48 * 48) or []:
        name = colour_name(rgb)
        counts[name] = counts.get(name, 0) + count
    dominant = max(counts, key=counts.get) if counts else "gray"
    return fmt, width, height, dominant


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType
        return ImageFont.load_default()


@lru_cache(maxsize=24)
def render_png(
    model: str,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    loras: str = "",
    input_image: bytes | None = None,
) -> bytes:
    """A PNG that depends only on its arguments (byte-identical for equal arguments)."""
    rng = _rng(
        model, prompt, seed, width, height, loras, hashlib.sha256(input_image or b"").hexdigest()
    )
    base = None
    if input_image:
        try:
            with Image.open(io.BytesIO(input_image)) as im:
                src = im.convert("RGB")
            base = ImageOps.fit(src, (width, height), Image.Resampling.BILINEAR)
            tint = Image.new("RGB", (width, height), _colour(rng))
            base = Image.blend(base, tint, 0.25)
        except Exception:
            base = None
    if base is None:
        gradient = Image.linear_gradient("L").rotate(rng.randrange(360), expand=False)
        small = ImageOps.colorize(gradient, _colour(rng), _colour(rng))
        base = small.resize((width, height), Image.Resampling.BILINEAR)

    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    side = min(width, height)
    for _ in range(rng.randint(3, 7)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(2, side // 16), max(3, side // 4))
        fill = (*_colour(rng), rng.randint(90, 180))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=fill)
    image = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")

    draw = ImageDraw.Draw(image)
    font_size = max(8, side // 20)
    font = _font(font_size)
    caption = prompt if len(prompt) <= 40 else prompt[:39] + "..."
    lines = [caption, f"seed {seed}", f"{width}x{height}", model.split("/")[-1]]
    y = font_size // 2
    for line in lines:
        draw.text((font_size // 2 + 1, y + 1), line, fill=(0, 0, 0), font=font)
        draw.text((font_size // 2, y), line, fill=(255, 255, 255), font=font)
        y += int(font_size * 1.3)
        if y > height - font_size:
            break

    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
