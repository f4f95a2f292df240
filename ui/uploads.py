"""The only way the studio opens a file a client named.

Every Gradio event can be called with any payload, so a file value (`"path"` or
`{"path": …}`) is a claim, not a fact. A file is read only when its real path (links
resolved) lies inside Gradio's upload cache, where the page's uploads and example copies are,
or inside the project's own `assets/`. Everything else is refused with one error, the same
for a file that exists and one that does not, so the refusal tells nothing about the disk.
The size is checked by stat and then by a bounded read, before the bytes are held.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradio.utils import get_upload_folder

from modelscope_api import wire
from modelscope_api.chat import MAX_IMAGE_BYTES, read_bounded, sniff_image
from modelscope_api.errors import ValidationError
from modelscope_api.pictures import FittedPicture, fit_picture

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PATH_MAX_CHARS = 4096


def refused(field: str) -> ValidationError:
    return ValidationError(field, "a file that was not uploaded in this page",
                           "a picture uploaded here", kind="not_uploaded")


def allowed_roots() -> list[Path]:
    """Gradio's upload cache (read at call time: GRADIO_TEMP_DIR may change it) and assets/."""
    return [Path(os.path.realpath(get_upload_folder())), Path(os.path.realpath(ASSETS))]


def upload_path(value: Any, field: str = "image") -> Path | None:
    """The real path of an uploaded file named by `value` (a path string, or Gradio's file
    record as a dict or object), or None when nothing was given. Raises the one refusal
    error for anything outside the allowed folders, for any type of value."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        value = value.get("path")
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif not isinstance(value, str):
        value = getattr(value, "path", None) or getattr(value, "name", None)
    if not isinstance(value, str) or not value or len(value) > PATH_MAX_CHARS or "\x00" in value:
        raise refused(field)
    try:
        real = Path(os.path.realpath(value))
    except (OSError, ValueError):
        raise refused(field) from None
    if not any(real.is_relative_to(root) and real != root for root in allowed_roots()):
        raise refused(field)
    if not real.is_file():  # inside the cache but gone (expired): same words as any refusal
        raise refused(field)
    return real


@dataclass(frozen=True)
class Upload:
    """An uploaded picture, checked: where it is, its digest and type (bytes not kept)."""

    path: Path
    digest: str
    mime: str


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def read_upload(value: Any, field: str = "image", max_bytes: int = MAX_IMAGE_BYTES) -> tuple[Upload, bytes] | None:
    """(Upload, bytes) for an allowed, size-bounded, Pillow-checked picture, or None if none
    was given. ValidationError names the field for a refusal, a size or a non-picture."""
    path = upload_path(value, field)
    if path is None:
        return None
    try:
        data = read_bounded(path, max_bytes)
        if not data:
            raise ValidationError(field, "an empty file", "a PNG, JPEG, WebP, GIF or BMP image", kind="empty")
        mime = sniff_image(data)
    except ValidationError as err:
        if err.kind == "missing":  # removed meanwhile: the same words as any refusal
            raise refused(field) from None
        raise ValidationError(field, err.value, err.allowed, kind=err.kind, **err.limits) from None
    except OSError:
        raise refused(field) from None
    return Upload(path, hashlib.sha256(data).hexdigest()[:16], mime), data


def read_fitted(value: Any, field: str = "image") -> tuple[Upload, FittedPicture] | None:
    """read_upload, then the picture fitted to the service (fit_picture: shrunk when a side is
    over wire.PICTURE_MAX_SIDE, else the very same bytes): what is sent. The Upload's digest
    is of the file as uploaded, so the same file is the same conversation however it is sent."""
    found = read_upload(value, field)
    if found is None:
        return None
    upload, data = found
    try:
        picture = fit_picture(data)
    except ValidationError as err:
        raise ValidationError(field, err.value, err.allowed, kind=err.kind, **err.limits) from None
    return upload, picture


def shrink_facts(picture: FittedPicture) -> tuple[str, dict[str, Any]] | None:
    """How a fitted picture was changed, for a note: ("shrunk", sizes) when its sides were
    made smaller, ("compressed", megabytes) when only its bytes were, None when it is sent as
    it was uploaded."""
    if not picture.shrunk:
        return None
    (w0, h0), (w, h) = picture.original_size, picture.size
    if (w0, h0) != (w, h):
        return "shrunk", {"w0": w0, "h0": h0, "w": w, "h": h, "limit": wire.PICTURE_MAX_SIDE}
    return "compressed", {"mb0": f"{picture.original_bytes / 1e6:.1f}", "mb": f"{len(picture.data) / 1e6:.1f}"}


def collect_after_inline_picture() -> None:
    """Free a sent picture now. The HTTP stack (httpx/httpcore) keeps each finished request,
    a 13 MB data: URL body included, in reference cycles that only Python's cycle collector
    frees, at a time of its choosing: a studio's RSS swung by hundreds of MB over 1,000
    Vision sessions. A collection after each inline picture frees it at once (about 1 ms once
    app.py has frozen the start-up objects)."""
    gc.collect()
