"""Picture bytes: what they are (`sniff_image`, with the decompression-bomb checks) and fitting
them to what the service takes (`fit_picture`).

The service refuses a picture with a side longer than wire.PICTURE_MAX_SIDE (a phone photo of
1080x2376 answers 400 "input size exceed limit 2048x2048,current input:(1080,2376)"), so a
bigger one is shrunk here, aspect kept, before it is sent. Pure functions over bytes: no files,
no network.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from dataclasses import dataclass, field

from . import wire
from .errors import ValidationError

# Pictures are decoded with this pixel limit (Pillow's own bomb check is a warning below twice
# its default): a 20000x20000 PNG of a few kilobytes must be refused, not expanded.
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp",
                 "GIF": "image/gif", "BMP": "image/bmp"}
IMAGE_ALLOWED = "a PNG, JPEG, WebP, GIF or BMP image"

# Our own bound on a fitted picture's bytes (the service publishes none). 4 MB is a data: URL of
# about 5.6 MB: inside what other vision APIs accept inline (5-20 MB), and the picture travels
# again with every follow-up question. A 2048-px photo at JPEG quality 90 is usually 0.5-2 MB,
# so the bound only bites on noise-like photos and big PNGs.
PICTURE_MAX_BYTES = 4 * 1024 * 1024
JPEG_QUALITIES = (90, 80, 70, 60)  # tried in turn while the result is over the byte bound
STEP_DOWN = 0.75  # then the long side shrinks (at least this much) and the qualities are tried again
MIN_SIDE = 64  # below this a picture is no use to a model: give up instead

_ORIENTATION = 0x0112  # EXIF tag; values 5-8 mean the picture is seen turned by 90 degrees


def sniff_image(data: bytes) -> str:
    """The MIME type of image bytes, by Pillow; ValidationError if they are not an image or
    would decode to more than MAX_IMAGE_PIXELS (a decompression bomb). Reads the header only."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValidationError("image", f"{width}x{height} pixels",
                                          f"at most {MAX_IMAGE_PIXELS // 1_000_000} million pixels",
                                          kind="too_big", limit=MAX_IMAGE_PIXELS)
                img.verify()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError("image", "a picture too large to open",
                              f"at most {MAX_IMAGE_PIXELS // 1_000_000} million pixels",
                              kind="too_big", limit=MAX_IMAGE_PIXELS) from exc
    except Exception as exc:  # Pillow raises many types for broken files
        raise ValidationError("image", "the uploaded file", IMAGE_ALLOWED, kind="not_image") from exc
    if fmt not in IMAGE_FORMATS:
        raise ValidationError("image", fmt, IMAGE_ALLOWED, kind="not_image")
    return IMAGE_FORMATS[fmt]


@dataclass(frozen=True)
class FittedPicture:
    """A picture ready to send. Sizes are (width, height) as the picture is seen (EXIF
    orientation applied); `shrunk` is False when `data` is the caller's bytes, unchanged."""

    data: bytes = field(repr=False)
    mime: str
    original_size: tuple[int, int]
    size: tuple[int, int]
    shrunk: bool
    original_bytes: int

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def fit_size(width: int, height: int, max_side: int = wire.PICTURE_MAX_SIDE) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is max_side (aspect kept, the shorter
    side rounded to the nearest pixel, at least 1); unchanged when both already fit.
    fit_size(1080, 2376) == (931, 2048)."""
    long = max(width, height)
    if long <= max_side:
        return width, height

    def scale(side: int) -> int:  # round(side * max_side / long), in whole numbers
        return max(1, min(max_side, (2 * side * max_side + long) // (2 * long)))

    return scale(width), scale(height)


def _seen_size(img) -> tuple[int, int]:
    """The size as the picture is seen: EXIF orientations 5-8 turn it by 90 degrees. A PNG's
    EXIF is only looked at when it came before the pixels (reading further would decode)."""
    width, height = img.size
    try:
        if img.format == "PNG":
            from PIL import Image

            exif = Image.Exif()
            if img.info.get("exif"):
                exif.load(img.info["exif"])
        else:
            exif = img.getexif()
        turned = exif.get(_ORIENTATION) in (5, 6, 7, 8)
    except Exception:  # broken EXIF: Pillow's exif_transpose ignores it too
        turned = False
    return (height, width) if turned else (width, height)


def _has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _encode(img, fmt: str, quality: int | None, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=quality, **extra)
    else:
        img.save(buf, "PNG", **extra)
    return buf.getvalue()


def fit_picture(data: bytes, *, max_side: int = wire.PICTURE_MAX_SIDE,
                max_bytes: int = PICTURE_MAX_BYTES) -> FittedPicture:
    """`data` fitted to the service: each side at most max_side and at most max_bytes.

    Bytes that already fit are returned unchanged (byte for byte). Otherwise the picture is
    turned upright (EXIF orientation), resized with LANCZOS to fit_size(), and encoded as PNG
    when it has transparency or was a PNG, else as JPEG at quality 90; while the result is
    over max_bytes the JPEG quality steps down, then the size. An animated picture keeps its
    first frame. The bomb checks of sniff_image run first, before any pixel is decoded.
    ValidationError (field "image") for a non-picture, a bomb, or one that cannot be made
    small enough."""
    from PIL import Image, ImageOps

    if not data:
        raise ValidationError("image", "an empty file", IMAGE_ALLOWED, kind="empty")
    mime = sniff_image(data)  # header only: refuses bombs and non-pictures before decoding
    with Image.open(io.BytesIO(data)) as img:
        stored = img.size
        seen = _seen_size(img)
        target = fit_size(*seen, max_side)
        if target == seen and len(data) <= max_bytes:
            return FittedPicture(data, mime, seen, seen, False, len(data))
        fmt, icc = img.format, img.info.get("icc_profile")
        if fmt == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers the target
            turned = seen != stored
            img.draft(None, (target[1], target[0]) if turned else target)
        try:
            upright = ImageOps.exif_transpose(img)
        except Exception:  # broken EXIF: send the pixels as they are stored
            upright, seen = img.copy(), stored
            target = fit_size(*stored, max_side)
    if seen[0] != seen[1] and (upright.width > upright.height) != (seen[0] > seen[1]):
        seen = (seen[1], seen[0])  # an orientation found only with the pixels (a PNG's late EXIF)
        target = fit_size(*seen, max_side)
    if upright.mode == "CMYK":
        icc = None  # a CMYK profile does not describe the RGB pixels sent
    alpha = _has_alpha(upright)
    if alpha:
        upright = upright.convert("RGBA")
    elif upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    # A PNG stays PNG while it fits; a photo (no transparency) goes on as JPEG, quality
    # stepping down. A picture with transparency stays PNG and only its size steps down.
    plan: list[tuple[str, int | None]] = [("PNG", None)] if (fmt == "PNG" or alpha) else []
    if not alpha:
        plan += [("JPEG", q) for q in JPEG_QUALITIES]
    size = target
    while True:
        resized = upright if upright.size == size else upright.resize(size, Image.Resampling.LANCZOS)
        smallest = None
        for kind, quality in plan:
            out = _encode(resized, kind, quality, icc)
            if len(out) <= max_bytes:
                return FittedPicture(out, IMAGE_FORMATS[kind], seen, resized.size, True, len(data))
            smallest = len(out) if smallest is None else min(smallest, len(out))
        if not alpha:
            plan = [step for step in plan if step[0] == "JPEG"]
        long = max(size)
        if long <= MIN_SIDE:
            raise ValidationError("image", f"{seen[0]}x{seen[1]} pixels",
                                  f"a picture that fits in {max_bytes / 1e6:.1f} MB", kind="too_big",
                                  limit=max_bytes)
        # Bytes go with the pixel count, so the side with the square root of the excess (a
        # little under it), and at least by STEP_DOWN: one or two rounds, not a dozen.
        factor = min(STEP_DOWN, 0.95 * math.sqrt(max_bytes / smallest))
        size = fit_size(*size, max(MIN_SIDE, int(long * factor)))
