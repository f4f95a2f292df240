"""fit_picture: pictures over the service's 2048 px a side are shrunk (aspect kept, upright,
LANCZOS), kept PNG when they were PNG or have transparency, held under the byte bound; a
picture that fits is sent byte for byte as it came; bombs are refused before decoding."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image, ImageDraw, ImageFile

from modelscope_api import wire
from modelscope_api.chat import image_to_data_url, load_picture
from modelscope_api.errors import ValidationError
from modelscope_api.pictures import PICTURE_MAX_BYTES, fit_picture, fit_size


def photo(size=(1080, 2376), fmt="JPEG", mode="RGB", **save) -> bytes:
    """A photo-like picture: a gradient with a red block in its top-left corner."""
    img = Image.linear_gradient("L").resize(size).convert(mode)
    ImageDraw.Draw(img).rectangle((0, 0, size[0] // 4, size[1] // 8), fill=(220, 20, 20) if mode != "L" else 0)
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def noise(size, fmt="JPEG", **save) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 120).convert("RGB").save(buf, fmt, **save)
    return buf.getvalue()


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def red(pixel) -> bool:
    return pixel[0] > 180 and pixel[1] < 70 and pixel[2] < 70


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a few dozen bytes): a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_the_limit_is_the_services():
    assert wire.PICTURE_MAX_SIDE == 2048
    assert wire.MSG_PICTURE_TOO_BIG.format(limit=2048, width=1080, height=2376) == (
        "input size exceed limit 2048x2048,current input:(1080,2376)")


@pytest.mark.parametrize(("size", "fitted"), [
    ((1080, 2376), (931, 2048)), ((2376, 1080), (2048, 931)), ((4032, 3024), (2048, 1536)),
    ((2049, 2049), (2048, 2048)), ((2048, 2048), (2048, 2048)), ((640, 480), (640, 480)),
    ((10000, 3), (2048, 1)),
])
def test_fit_size_keeps_the_aspect_and_rounds_to_the_nearest_pixel(size, fitted):
    assert fit_size(*size) == fitted


def test_a_phone_photo_is_shrunk_to_exactly_931_by_2048():
    data = photo((1080, 2376), quality=95)
    fitted = fit_picture(data)
    assert fitted.shrunk and fitted.original_size == (1080, 2376) and fitted.size == (931, 2048)
    assert fitted.mime == "image/jpeg" and fitted.original_bytes == len(data)
    out = opened(fitted.data)
    assert out.format == "JPEG" and out.size == (931, 2048)
    assert red(out.getpixel((20, 20))) and not red(out.getpixel((900, 2000)))  # the corner stays
    assert "exif" not in out.info  # turned upright already: no orientation left to apply twice
    assert fitted.data_url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(fitted.data_url.split(",", 1)[1]) == fitted.data
    assert "data=" not in repr(fitted)  # a repr never dumps megabytes


def test_an_exif_rotated_photo_is_measured_and_sent_as_it_is_seen():
    """Stored 2376x1080 with EXIF orientation 6 (seen turned 90 degrees clockwise): the
    service is sent the upright 931x2048, and the note names the seen 1080x2376."""
    stored = Image.linear_gradient("L").resize((2376, 1080)).convert("RGB")
    ImageDraw.Draw(stored).rectangle((0, 0, 300, 150), fill=(220, 20, 20))  # stored top-left
    exif = stored.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    fitted = fit_picture(buf.getvalue())
    assert fitted.original_size == (1080, 2376) and fitted.size == (931, 2048)
    out = opened(fitted.data)
    assert out.size == (931, 2048)
    # turned clockwise, the stored top-left corner is seen at the top right
    assert red(out.getpixel((920, 10))) and not red(out.getpixel((10, 10)))


def test_a_png_whose_orientation_comes_after_its_pixels_is_not_squashed():
    """A PNG's EXIF may follow the pixel data: found only while decoding, it still turns the
    picture upright, and the size follows (931x2048, not a squashed 2048x931)."""
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((2376, 1080)).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()
    late = (struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body)))
    end = data.rindex(b"IEND") - 4
    fitted = fit_picture(data[:end] + late + data[end:])
    assert fitted.original_size == (1080, 2376) and fitted.size == (931, 2048)
    assert opened(fitted.data).size == (931, 2048)


def test_a_png_with_transparency_stays_png_with_its_alpha():
    img = Image.new("RGBA", (3000, 1200), (30, 120, 200, 255))
    ImageDraw.Draw(img).rectangle((0, 0, 1500, 1200), fill=(0, 0, 0, 0))  # the left half is clear
    buf = io.BytesIO()
    img.save(buf, "PNG")
    fitted = fit_picture(buf.getvalue())
    assert fitted.shrunk and fitted.mime == "image/png" and fitted.size == (2048, 819)
    out = opened(fitted.data)
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.getpixel((100, 400))[3] == 0 and out.getpixel((1900, 400))[3] == 255


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("WEBP", "image/jpeg"),
                                           ("BMP", "image/jpeg"), ("GIF", "image/jpeg")])
def test_png_stays_png_and_other_photos_become_jpeg(fmt, mime):
    fitted = fit_picture(photo((2600, 1300), fmt=fmt))
    assert fitted.mime == mime and fitted.size == (2048, 1024)
    assert opened(fitted.data).size == (2048, 1024)


@pytest.mark.parametrize("data", [
    photo((1080, 2048)), photo((2048, 2048), fmt="PNG"), photo((300, 200), fmt="GIF"),
    photo((640, 480), fmt="WEBP"), photo((100, 100), fmt="BMP"),
], ids=["jpeg-2048", "png-2048", "gif", "webp", "bmp"])
def test_a_picture_that_fits_is_returned_byte_for_byte(data):
    fitted = fit_picture(data)
    assert not fitted.shrunk and fitted.data is data
    assert fitted.size == fitted.original_size == opened(data).size
    assert image_to_data_url(data) == "data:" + fitted.mime + ";base64," + base64.b64encode(data).decode()


def test_the_byte_bound_steps_the_quality_then_the_size_down():
    data = noise((2400, 1600), quality=95)
    assert len(data) > 1_000_000
    fitted = fit_picture(data, max_bytes=300_000)
    assert fitted.shrunk and len(fitted.data) <= 300_000 and max(fitted.size) <= 2048
    w, h = fitted.size
    assert abs(w / h - 1.5) < 0.01  # the aspect is kept while stepping down
    assert opened(fitted.data).size == fitted.size


def test_a_picture_small_in_pixels_but_big_in_bytes_is_compressed():
    data = noise((1800, 1800), fmt="BMP")  # ~9.7 MB of pixels that fit
    assert len(data) > PICTURE_MAX_BYTES
    fitted = fit_picture(data)
    assert fitted.shrunk and fitted.size == fitted.original_size == (1800, 1800)
    assert fitted.mime == "image/jpeg" and len(fitted.data) <= PICTURE_MAX_BYTES


def test_a_transparent_picture_that_cannot_shrink_enough_is_refused():
    img = Image.effect_noise((2100, 700), 120).convert("RGBA")
    img.putalpha(Image.effect_noise((2100, 700), 120))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    with pytest.raises(ValidationError) as info:
        fit_picture(buf.getvalue(), max_bytes=2_000)
    assert info.value.field == "image" and info.value.kind == "too_big"


@pytest.mark.parametrize("size", [(20000, 20000), (8000, 8000)])
def test_a_bomb_is_refused_before_any_pixel_is_decoded(size, monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ValidationError) as info:
        fit_picture(png_header_only(*size))
    assert info.value.kind == "too_big" and "million pixels" in info.value.allowed


@pytest.mark.parametrize(("data", "kind"), [(b"", "empty"), (b"%PDF-1.4 not a picture", "not_image")])
def test_not_a_picture_is_refused(data, kind):
    with pytest.raises(ValidationError) as info:
        fit_picture(data)
    assert info.value.kind == kind


def test_a_local_file_is_loaded_bounded_and_fitted(tmp_path):
    path = tmp_path / "phone.jpg"
    path.write_bytes(photo((1080, 2376)))
    fitted = load_picture(path)
    assert fitted.shrunk and fitted.size == (931, 2048)
    assert opened(base64.b64decode(image_to_data_url(str(path)).split(",", 1)[1])).size == (931, 2048)
    with pytest.raises(ValidationError):
        load_picture(path, max_bytes=100)  # the size bound comes before any decoding
