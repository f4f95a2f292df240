"""Saving image results: safe names, exclusive and atomic writes, PNG text chunk, JSON sidecar.

The lesson's script saved every image as `result_image.jpg`, so each run overwrote the last.
Here a file is named `YYYYmmdd-HHMMSS_<prompt-slug>_<seed>.<ext>`, is never overwritten
(a `-1`, `-2`… suffix on collision, even when many threads save the same prompt at once),
and appears whole or not at all (written to a temp file in the same directory, then
hard-linked into place).

The image bytes are the ones the server sent, never re-encoded. For PNGs the metadata is
added as one `parameters` text chunk spliced in before IEND, so every other byte (and so
every pixel) stays as served. A `.json` sidecar with the same record sits next to every
image, whatever its format.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import struct
import tempfile
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .images import ImageResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PARAMETERS_KEY = "parameters"
SLUG_MAX_BYTES = 120
DEFAULT_SLUG = "image"
MAX_COLLISION_SUFFIX = 100_000

_NON_WORD = re.compile(r"[\W_]+")


# --------------------------------------------------------------------------- names


def prompt_slug(prompt: str, max_chars: int = 40) -> str:
    """A file-name-safe piece of the prompt: letters and digits of any script, joined by "-".

    Whitespace, punctuation, path separators, control characters, NUL, dots and emoji all
    become "-" (runs collapse, ends are trimmed). At most `max_chars` characters and
    SLUG_MAX_BYTES bytes of UTF-8. Nothing left → "image".
    """
    text = unicodedata.normalize("NFC", str(prompt or ""))
    slug = _NON_WORD.sub("-", text).strip("-")
    slug = slug[: max(0, max_chars)]
    while len(slug.encode("utf-8")) > SLUG_MAX_BYTES:
        slug = slug[:-1]
    slug = slug.strip("-")
    return slug or DEFAULT_SLUG


def _clean_ext(ext: str | None) -> str:
    ext = re.sub(r"[^a-z0-9]", "", str(ext or "").lower())[:8]
    return ext or "png"


def _seed_part(seed: Any) -> str:
    if seed is None:
        return "random"
    try:
        return str(int(seed))
    except (TypeError, ValueError):
        return prompt_slug(str(seed), 20) if str(seed).strip() else "random"


def build_filename(prompt: str, seed: int | None, ext: str, now: datetime) -> str:
    """`YYYYmmdd-HHMMSS_<slug>_<seed>.<ext>`; seed None → "random"."""
    return f"{now:%Y%m%d-%H%M%S}_{prompt_slug(prompt)}_{_seed_part(seed)}.{_clean_ext(ext)}"


# --------------------------------------------------------------------------- PNG chunks


def iter_png_chunks(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, type, chunk data) for each chunk; stops at IEND or at the first broken chunk."""
    if not data.startswith(PNG_SIGNATURE):
        return
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return
        yield pos, ctype, data[pos + 8 : pos + 8 + length]
        if ctype == b"IEND":
            return
        pos = end


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(
        ">I", zlib.crc32(ctype + payload) & 0xFFFFFFFF
    )


def text_chunk(key: str, text: str) -> bytes:
    """tEXt when the text is Latin-1, else an uncompressed iTXt (UTF-8)."""
    keyword = key.encode("latin-1")
    if not 1 <= len(keyword) <= 79:
        raise ValueError("PNG text keyword must be 1-79 bytes")
    try:
        return png_chunk(b"tEXt", keyword + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
        payload = keyword + b"\0" + b"\0\0" + b"\0" + b"\0" + text.encode("utf-8")
        return png_chunk(b"iTXt", payload)


def insert_png_text(data: bytes, key: str, text: str) -> bytes | None:
    """The PNG with one text chunk inserted right before IEND; None if the PNG can't be read."""
    for offset, ctype, _ in iter_png_chunks(data):
        if ctype == b"IEND":
            return data[:offset] + text_chunk(key, text) + data[offset:]
    return None


def _decode_text_chunk(ctype: bytes, payload: bytes) -> tuple[str, str] | None:
    try:
        key, rest = payload.split(b"\0", 1)
        if ctype == b"tEXt":
            return key.decode("latin-1"), rest.decode("latin-1")
        if ctype == b"zTXt":
            return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
        if ctype == b"iTXt":
            flag, _method = rest[0], rest[1]
            _lang, _tkey, value = rest[2:].split(b"\0", 2)
            if flag:
                value = _inflate(value)
            return key.decode("latin-1"), value.decode("utf-8")
    except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
        return None
    return None


def _inflate(data: bytes, limit: int = 16 * 1024 * 1024) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out


def png_text(data: bytes) -> dict[str, str]:
    """All text chunks (tEXt, zTXt, iTXt) of a PNG; the first of each key wins."""
    found: dict[str, str] = {}
    for _, ctype, payload in iter_png_chunks(data):
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            kv = _decode_text_chunk(ctype, payload)
            if kv and kv[0] not in found:
                found[kv[0]] = kv[1]
    return found


def read_png_parameters(path: str | os.PathLike[str]) -> str | None:
    """The `parameters` text of a PNG file, or None (not a PNG, no such chunk, unreadable)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return png_text(data).get(PARAMETERS_KEY)


# --------------------------------------------------------------------------- writing


@dataclass
class SavedImage:
    path: Path
    sidecar: Path


def _write_temp(directory: Path, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _place(tmp: str, final: Path) -> bool:
    """Put the finished temp file at `final` without ever replacing a file. False if taken."""
    try:
        os.link(tmp, final)  # atomic, and fails if final exists
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP,
                             errno.EMLINK, errno.EACCES, errno.ENOSYS):
            raise
    # No hard links here: reserve the name exclusively, then rename the full file onto it.
    try:
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    os.replace(tmp, final)
    return True


def _candidate(stem: str, ext: str, n: int) -> str:
    return f"{stem}.{ext}" if n == 0 else f"{stem}-{n}.{ext}"


def _json_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n").encode("utf-8")


def save_result(
    result: ImageResult, outputs_dir: str | os.PathLike[str] = "outputs", *, now: datetime | None = None
) -> list[SavedImage]:
    """Write every image of `result` (original bytes) plus a `.json` sidecar each.

    Never overwrites, never shows a half-written file, creates `outputs_dir`.
    """
    directory = Path(outputs_dir)
    directory.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now()
    created = now.isoformat(timespec="seconds")
    seed = result.seed if result.seed is not None else result.request.seed
    several = len(result.images) > 1
    saved: list[SavedImage] = []
    for index, image in enumerate(result.images, start=1):
        ext = _clean_ext(image.extension)
        name = build_filename(result.request.prompt, seed, ext, now)
        stem = name[: -(len(ext) + 1)]
        if several:
            stem += f"_{index}"
        saved.append(_save_one(directory, stem, ext, image.data, result, index, created))
    return saved


def _save_one(
    directory: Path, stem: str, ext: str, data: bytes, result: ImageResult, index: int, created: str
) -> SavedImage:
    record = result.to_record()
    record["created"] = created
    record["image_index"] = index
    body = data
    if data.startswith(PNG_SIGNATURE):
        text = json.dumps(record, ensure_ascii=False, default=str)
        body = insert_png_text(data, PARAMETERS_KEY, text) or data
    tmp_image = _write_temp(directory, body)
    tmp_json: str | None = None
    try:
        for n in range(MAX_COLLISION_SUFFIX):
            name = _candidate(stem, ext, n)
            final = directory / name
            sidecar = directory / _candidate(stem, "json", n)
            if final.exists() or sidecar.exists():
                continue  # cheap skip; _place is what really decides
            if not _place(tmp_image, final):
                continue
            if tmp_json is None:
                tmp_json = _write_temp(directory, _json_bytes(dict(record, file=name)))
            if not _place(tmp_json, sidecar):
                # a foreign .json took this stem: give the name back and try the next one
                os.unlink(final)
                with contextlib.suppress(OSError):
                    os.unlink(tmp_json)
                tmp_json = None
                if not os.path.exists(tmp_image):  # consumed by the rename fallback
                    tmp_image = _write_temp(directory, body)
                continue
            return SavedImage(final, sidecar)
        raise FileExistsError(f"no free file name for {stem}.{ext} in {directory}")
    finally:
        for tmp in (tmp_image, tmp_json):
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


__all__ = [
    "SavedImage", "build_filename", "insert_png_text", "iter_png_chunks", "png_text",
    "prompt_slug", "read_png_parameters", "save_result",
]
