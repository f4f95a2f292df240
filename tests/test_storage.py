"""storage: safe names, never-overwrite atomic saves, PNG parameters chunk, JSON sidecars."""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from modelscope_api import storage
from modelscope_api.images import GeneratedImage, ImageRequest, ImageResult
from modelscope_api.storage import (
    SavedImage,
    build_filename,
    iter_png_chunks,
    prompt_slug,
    read_png_parameters,
    save_result,
)

NOW = datetime(2025, 9, 16, 11, 22, 33)
TOKEN = "ms-test-storage-secret-0123456789"


def png_bytes(size=(16, 12), colour=(200, 150, 30), mode="RGB") -> bytes:
    img = Image.new(mode, size, colour)
    for x in range(size[0]):  # some structure, so a pixel mix-up would show
        img.putpixel((x, x % size[1]), (x * 13 % 256, 0, 255 - x) if mode == "RGB" else x)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_result(prompt="一只金色的猫", seed=7, images=None, **req) -> ImageResult:
    request = ImageRequest(
        model="Qwen/Qwen-Image", prompt=prompt, seed=seed,
        loras=req.pop("loras", {"a/b": 0.6, "c/d": 0.4}), **req,
    )
    images = images if images is not None else [
        GeneratedImage(png_bytes(), "http://sim.local/files/abc.png", "image/png")
    ]
    return ImageResult(
        request=request, task_id="12345", request_id="req-1", images=images,
        time_taken_ms=1234.5, seed=seed, parameters={"prompt": prompt, "seed": seed, "size": "1328x1328"},
        quota=None, polls=3, elapsed=1.5,
    )


def strip_parameters_chunk(data: bytes) -> bytes:
    """The PNG bytes with our inserted parameters chunk removed."""
    for offset, ctype, payload in iter_png_chunks(data):
        if ctype in (b"tEXt", b"iTXt") and payload.startswith(b"parameters\0"):
            return data[:offset] + data[offset + 12 + len(payload):]
    raise AssertionError("no parameters chunk")


# --------------------------------------------------------------------------- names

HOSTILE = [
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/absolute/path/cat",
    "C:\\Users\\x\\cat",
    "x" * 2000,
    "猫" * 2000,
    "🐱🐶🎉 cat 🎨",
    "cat\0dog",
    "line1\nline2\r\nline3\ttab",
    "!!!...???///\\\\",
    "...",
    ".hidden.",
    "   ",
    "",
    "\x01\x02\x7f control",
    "a/b\\c:d*e?f\"g<h>i|j",
    "CON",
    "e\u0301cole",  # decomposed é
    "‮evil-rtl",
]


@pytest.mark.parametrize("prompt", HOSTILE)
def test_prompt_slug_is_safe(prompt):
    slug = prompt_slug(prompt)
    assert slug
    assert len(slug) <= 40
    assert len(slug.encode("utf-8")) <= storage.SLUG_MAX_BYTES
    for bad in ("/", "\\", "\0", "\n", "\r", "\t", ":", "*", "?", '"', "<", ">", "|", " "):
        assert bad not in slug
    assert not slug.startswith((".", "-")) and not slug.endswith((".", "-"))
    assert all(ch.isprintable() for ch in slug)
    assert ".." not in slug


def test_prompt_slug_examples():
    assert prompt_slug("一个小丑在北海公园的白塔下跳舞") == "一个小丑在北海公园的白塔下跳舞"
    assert prompt_slug("A golden cat, with a fish!") == "A-golden-cat-with-a-fish"
    assert prompt_slug("金猫 + 鱼") == "金猫-鱼"
    assert prompt_slug("🐱🐶") == "image"
    assert prompt_slug("!!!") == "image"
    assert prompt_slug("") == "image"
    assert prompt_slug(None) == "image"
    assert prompt_slug("../../etc/passwd") == "etc-passwd"
    assert prompt_slug("snake_case_words") == "snake-case-words"
    assert prompt_slug("abcdef", max_chars=3) == "abc"
    assert prompt_slug("e\u0301cole") == "école"  # NFC: one letter, not letter + mark


def test_prompt_slug_byte_bound_with_wide_chars():
    slug = prompt_slug("猫" * 500, max_chars=200)
    assert len(slug.encode("utf-8")) <= storage.SLUG_MAX_BYTES
    assert slug == "猫" * 40  # 40 × 3 bytes = 120


def test_build_filename():
    assert build_filename("一只金色的猫", 7, "png", NOW) == "20250916-112233_一只金色的猫_7.png"
    assert build_filename("a cat", None, ".JPG", NOW) == "20250916-112233_a-cat_random.jpg"
    assert build_filename("../x", 0, "png", NOW) == "20250916-112233_x_0.png"
    name = build_filename("猫" * 2000, 2**31 - 1, "webp", NOW)
    assert len(name.encode("utf-8")) < 200


@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_prompts_save_inside_the_directory(tmp_path, prompt):
    out = tmp_path / "outputs"
    saved = save_result(make_result(prompt=prompt), out, now=NOW)
    assert len(saved) == 1
    for p in (saved[0].path, saved[0].sidecar):
        assert p.parent == out and p.is_file()
        assert not p.name.startswith(".")
    assert sorted(os.listdir(out)) == sorted([saved[0].path.name, saved[0].sidecar.name])
    assert list(tmp_path.iterdir()) == [out]


# --------------------------------------------------------------------------- PNG bytes


def test_png_original_bytes_and_pixels_preserved(tmp_path):
    result = make_result()
    original = result.images[0].data
    [saved] = save_result(result, tmp_path, now=NOW)
    data = saved.path.read_bytes()
    assert data != original
    assert strip_parameters_chunk(data) == original  # only one chunk was added
    with Image.open(io.BytesIO(original)) as a, Image.open(saved.path) as b:
        assert a.mode == b.mode and a.size == b.size
        assert a.tobytes() == b.tobytes()
    # every original chunk is still there, byte for byte, in order; ours comes just before IEND
    chunks = [(t, p) for _, t, p in iter_png_chunks(data)]
    assert chunks[-1][0] == b"IEND"
    assert chunks[-2][1].startswith(b"parameters\0")


def test_png_parameters_readable_by_pillow_and_by_us(tmp_path):
    [saved] = save_result(make_result(), tmp_path, now=NOW)
    with Image.open(saved.path) as img:
        img.load()
        text = img.text["parameters"]
        assert img.info["parameters"] == text
    assert read_png_parameters(saved.path) == text
    meta = json.loads(text)
    assert meta["request"]["prompt"] == "一只金色的猫"
    assert meta["request"]["loras"] == {"a/b": 0.6, "c/d": 0.4}
    assert meta["seed"] == 7
    assert meta["task_id"] == "12345"
    assert meta["created"] == NOW.isoformat(timespec="seconds")


def test_ascii_metadata_uses_text_chunk_unicode_uses_itxt(tmp_path):
    [a] = save_result(make_result(prompt="a golden cat", loras=None), tmp_path, now=NOW)
    [b] = save_result(make_result(prompt="一只金色的猫"), tmp_path, now=NOW)
    types_a = [t for _, t, _ in iter_png_chunks(a.path.read_bytes())]
    types_b = [t for _, t, _ in iter_png_chunks(b.path.read_bytes())]
    assert b"tEXt" in types_a and b"iTXt" not in types_a
    assert b"iTXt" in types_b
    assert json.loads(read_png_parameters(a.path))["request"]["prompt"] == "a golden cat"


def test_read_png_parameters_missing_cases(tmp_path):
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_bytes())
    assert read_png_parameters(plain) is None
    jpg = tmp_path / "x.jpg"
    jpg.write_bytes(jpeg_bytes())
    assert read_png_parameters(jpg) is None
    assert read_png_parameters(tmp_path / "nope.png") is None
    broken = tmp_path / "broken.png"
    broken.write_bytes(png_bytes()[:30])
    assert read_png_parameters(broken) is None


def test_read_pillow_written_compressed_itxt(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", "猫 " * 500, zip=True)
    p = tmp_path / "z.png"
    Image.new("RGB", (4, 4)).save(p, pnginfo=info)
    assert read_png_parameters(p) == "猫 " * 500


def test_broken_png_saved_unchanged(tmp_path):
    data = png_bytes()[:-12]  # no IEND: we cannot splice, so we keep the bytes as they came
    result = make_result(images=[GeneratedImage(data, "http://x/y.png", "image/png")])
    [saved] = save_result(result, tmp_path, now=NOW)
    assert saved.path.read_bytes() == data
    assert json.loads(saved.sidecar.read_text("utf-8"))["file"] == saved.path.name


def test_jpeg_bytes_untouched(tmp_path):
    data = jpeg_bytes()
    result = make_result(images=[GeneratedImage(data, "http://x/y.jpg", "image/jpeg")])
    [saved] = save_result(result, tmp_path, now=NOW)
    assert saved.path.suffix == ".jpg"
    assert saved.path.read_bytes() == data
    assert saved.sidecar.name == saved.path.stem + ".json"


# --------------------------------------------------------------------------- sidecar


def test_sidecar_contents(tmp_path):
    result = make_result()
    [saved] = save_result(result, tmp_path, now=NOW)
    assert isinstance(saved, SavedImage)
    assert saved.path.name == "20250916-112233_一只金色的猫_7.png"
    assert saved.sidecar == tmp_path / "20250916-112233_一只金色的猫_7.json"
    record = json.loads(saved.sidecar.read_text("utf-8"))
    expected = result.to_record()
    for key, value in expected.items():
        assert record[key] == value, key
    assert record["file"] == saved.path.name
    assert record["created"] == "2025-09-16T11:22:33"
    assert record["image_index"] == 1
    assert record["image_urls"] == ["http://sim.local/files/abc.png"]


def test_no_token_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ACCESS_TOKEN", TOKEN)
    saved = save_result(make_result(), tmp_path, now=NOW)
    for f in tmp_path.iterdir():
        blob = f.read_bytes()
        assert TOKEN.encode() not in blob
        assert b"Bearer" not in blob
    assert saved


def test_several_images_get_index_suffix(tmp_path):
    imgs = [GeneratedImage(png_bytes(colour=(i * 40, 0, 0)), f"http://x/{i}.png", "image/png") for i in range(3)]
    saved = save_result(make_result(images=imgs), tmp_path, now=NOW)
    names = [s.path.name for s in saved]
    assert names == [f"20250916-112233_一只金色的猫_7_{i}.png" for i in (1, 2, 3)]
    for i, s in enumerate(saved):
        assert strip_parameters_chunk(s.path.read_bytes()) == imgs[i].data
        assert json.loads(s.sidecar.read_text("utf-8"))["image_index"] == i + 1


def test_seed_none_is_random(tmp_path):
    [saved] = save_result(make_result(seed=None), tmp_path, now=NOW)
    assert saved.path.name.endswith("_random.png")


def test_creates_nested_directory(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    [saved] = save_result(make_result(), out, now=NOW)
    assert saved.path.parent == out


def test_default_now_is_current_time(tmp_path):
    before = datetime.now().replace(microsecond=0)
    [saved] = save_result(make_result(), tmp_path)
    stamp = datetime.strptime(saved.path.name[:15], "%Y%m%d-%H%M%S")
    assert before <= stamp <= datetime.now()


# --------------------------------------------------------------------------- never overwrite


def test_collisions_get_numbered_suffix(tmp_path):
    result = make_result()
    paths = [save_result(result, tmp_path, now=NOW)[0] for _ in range(3)]
    assert [p.path.name for p in paths] == [
        "20250916-112233_一只金色的猫_7.png",
        "20250916-112233_一只金色的猫_7-1.png",
        "20250916-112233_一只金色的猫_7-2.png",
    ]
    assert [p.sidecar.name for p in paths] == [p.path.stem + ".json" for p in paths]
    for p in paths:
        assert json.loads(p.sidecar.read_text("utf-8"))["file"] == p.path.name


def test_existing_foreign_files_are_never_touched(tmp_path):
    name = "20250916-112233_一只金色的猫_7"
    (tmp_path / f"{name}.png").write_bytes(b"mine")
    (tmp_path / f"{name}-1.json").write_text("{}")  # a foreign sidecar blocks stem -1 as well
    [saved] = save_result(make_result(), tmp_path, now=NOW)
    assert saved.path.name == f"{name}-2.png"
    assert (tmp_path / f"{name}.png").read_bytes() == b"mine"
    assert (tmp_path / f"{name}-1.json").read_text() == "{}"
    assert not (tmp_path / f"{name}-1.png").exists()


def test_race_on_sidecar_gives_name_back(tmp_path, monkeypatch):
    """If a foreign .json appears between our checks and our link, we move on to the next stem."""
    name = "20250916-112233_一只金色的猫_7"
    real_place = storage._place

    def place(tmp, final):
        if final.name == f"{name}.json" and not final.exists():
            final.write_text("foreign")
        return real_place(tmp, final)

    monkeypatch.setattr(storage, "_place", place)
    [saved] = save_result(make_result(), tmp_path, now=NOW)
    assert saved.path.name == f"{name}-1.png"
    assert not (tmp_path / f"{name}.png").exists()
    assert (tmp_path / f"{name}.json").read_text() == "foreign"


def test_concurrent_saves_of_one_prompt(tmp_path):
    result = make_result()
    n = 200
    barrier = threading.Barrier(n)
    out: list[SavedImage] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker():
        try:
            barrier.wait()
            s = save_result(result, tmp_path, now=NOW)
            with lock:
                out.extend(s)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(out) == n
    assert len({s.path for s in out}) == n and len({s.sidecar for s in out}) == n
    files = os.listdir(tmp_path)
    assert len([f for f in files if f.endswith(".png")]) == n
    assert len([f for f in files if f.endswith(".json")]) == n
    assert not [f for f in files if f.startswith(".tmp-")]  # no temp files left behind
    original = result.images[0].data
    for s in out:
        assert strip_parameters_chunk(s.path.read_bytes()) == original
        assert json.loads(s.sidecar.read_text("utf-8"))["file"] == s.path.name


def test_without_hard_links_falls_back_to_exclusive_create(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "hard links not allowed here")

    monkeypatch.setattr(storage.os, "link", no_link)
    result = make_result()
    a = save_result(result, tmp_path, now=NOW)[0]
    b = save_result(result, tmp_path, now=NOW)[0]
    assert a.path != b.path
    assert strip_parameters_chunk(a.path.read_bytes()) == result.images[0].data
    assert json.loads(b.sidecar.read_text("utf-8"))["file"] == b.path.name
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_readers_never_see_half_files(tmp_path, monkeypatch):
    """The final name only ever appears via link/rename of a complete temp file."""
    seen: list[tuple[str, int]] = []
    real_link = os.link

    def spy_link(src, dst):
        seen.append((Path(dst).name, Path(src).stat().st_size))
        return real_link(src, dst)

    monkeypatch.setattr(storage.os, "link", spy_link)
    [saved] = save_result(make_result(), tmp_path, now=NOW)
    sizes = dict(seen)
    assert sizes[saved.path.name] == saved.path.stat().st_size
    assert sizes[saved.sidecar.name] == saved.sidecar.stat().st_size


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(storage.os, "fsync", boom)
    with pytest.raises(OSError):
        save_result(make_result(), tmp_path, now=NOW)
    assert os.listdir(tmp_path) == []
