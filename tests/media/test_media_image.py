"""Image decode/encode on the real files in shared/images and on generated ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg

from viewfinder.errors import DecodeError, EncodeError, FormatError, InputFileError, SizeError
from viewfinder.media import (
    Frame,
    convert,
    decode_frame,
    decode_image,
    encode_jpeg,
    read_frame,
    read_image,
    write_image,
)

REAL = [("group_t1.jpg", (886, 1280)), ("crowd_selfie.jpg", (1150, 2048)),
        ("aligned_face_112.png", (112, 112)), ("dog.jpg", (576, 768)),
        ("bus.jpg", (1080, 810)), ("voc2007/000034.jpg", None)]


@pytest.mark.parametrize(("name", "hw"), REAL)
@pytest.mark.parametrize("fmt", ["bgr24", "rgb24", "gray8"])
def test_read_real_images(shared, name, hw, fmt):
    img = read_image(shared / "images" / name, fmt)
    assert img.dtype == np.uint8
    assert img.ndim == (2 if fmt == "gray8" else 3)
    if hw:
        assert img.shape[:2] == hw
    ref = cv2.imread(str(shared / "images" / name), cv2.IMREAD_COLOR)
    if fmt == "bgr24":
        assert np.abs(img.astype(int) - ref).mean() < 1.5   # same picture as OpenCV's
    if fmt == "rgb24":
        assert np.abs(img[..., ::-1].astype(int) - ref).mean() < 1.5


@pytest.mark.parametrize("name", ["group_t1.jpg", "bus.jpg", "dog.jpg"])  # 4:2:0, 4:2:0, 4:4:0
@pytest.mark.parametrize("fmt", ["nv12", "nv21", "i420"])
def test_jpeg_to_yuv_matches_rgb_path(shared, name, fmt):
    frame = read_frame(shared / "images" / name, fmt)
    assert frame.full_range and frame.matrix == "bt601"
    rgb = read_image(shared / "images" / name, "rgb24")
    assert np.abs(frame.to_array("rgb24").astype(int) - rgb).mean() < 2.5


@pytest.mark.parametrize("sub", ["444", "422", "420", "440", "Gray"])
def test_every_jpeg_subsampling_decodes_to_nv12(sub, make_image):
    bgr = make_image(70, 46)  # not multiples of the MCU
    data = simplejpeg.encode_jpeg(bgr, 95, "BGR", sub)
    frame = decode_frame(data, "nv12", "dvpp_jpegd")
    assert (frame.width, frame.height, frame.aligned_width, frame.aligned_height) == (
        70, 46, 128, 48)
    want = decode_image(data, "gray8" if sub == "Gray" else "bgr24")
    got = frame.to_array("gray8" if sub == "Gray" else "bgr24")
    assert np.abs(got.astype(int) - want).mean() < 2.5


def test_aligned_and_unaligned_show_the_same_picture(group_jpg):
    plain = read_frame(group_jpg, "nv12", "none")
    for align in ("dvpp_jpegd", "dvpp_vpc", (256, 64)):
        padded = read_frame(group_jpg, "nv12", align)
        assert padded.aligned_height > plain.aligned_height or align == "dvpp_vpc"
        assert np.array_equal(padded.to_array(), plain.to_array())
        assert np.array_equal(padded.to_array("bgr24"), plain.to_array("bgr24"))


def test_jpeg_yuv_planes_are_the_decoders_not_a_round_trip(group_jpg):
    """4:2:0 JPEG → I420 gives exactly libjpeg's Y plane (no RGB conversion in between)."""
    frame = read_frame(group_jpg, "i420")
    # libjpeg-turbo's own grey decode is its Y plane
    y = simplejpeg.decode_jpeg(group_jpg.read_bytes(), colorspace="GRAY")[..., 0]
    assert np.abs(frame.visible_planes()[0].astype(int) - y).max() <= 1


@pytest.mark.parametrize(("kind", "alpha"), [("png", False), ("png", True), ("bmp", False),
                                             ("webp", False)])
def test_non_jpeg_formats_and_conversions(tmp_path, make_image, kind, alpha):
    bgr = make_image(33, 17)
    src = np.dstack([bgr, np.full(bgr.shape[:2], 99, np.uint8)]) if alpha else bgr
    path = tmp_path / f"x.{kind}"
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if kind == "webp" else []  # 101 = lossless
    cv2.imwrite(str(path), src, params)
    assert np.array_equal(read_image(path), bgr)
    assert np.array_equal(read_image(path, "rgb24"), bgr[..., ::-1])


@pytest.mark.parametrize("kind", ["gray_png", "palette_bmp", "png16"])
def test_grey_palette_and_16bit_files_convert(tmp_path, kind):
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (4, 1))
    path = tmp_path / ("x.png" if kind != "palette_bmp" else "x.bmp")
    if kind == "png16":
        cv2.imwrite(str(path), grey.astype(np.uint16) * 257)
    else:
        cv2.imwrite(str(path), grey)  # OpenCV writes 8-bit grey BMPs with a palette
    img = read_image(path)
    assert img.shape == (4, 32, 3)
    assert np.array_equal(img[..., 0], grey) and np.array_equal(img[..., 2], grey)
    assert np.array_equal(read_image(path, "gray8"), grey)


def _truncate(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _damage(data: bytes) -> bytes:
    out = bytearray(data)
    mid = len(out) // 2
    out[mid:mid + 64] = b"\xff\xd9" * 32  # EOI markers in the middle of the scan
    return bytes(out)


@pytest.mark.parametrize("fmt", ["bgr24", "nv12"])
@pytest.mark.parametrize(("make", "match"), [
    (lambda d: _truncate(d), "truncated JPEG"),
    (lambda d: d[:300], "truncated JPEG"),
    (lambda d: b"", "empty"),
    (lambda d: b"this is plain text, not a picture", "not an image"),
    (lambda d: d[:2] + b"\xff\xc0\x00\x11\x08\x00\x00\x00\x00" + d[20:], "corrupt JPEG"),
])
def test_bad_jpeg_bytes(group_jpg, fmt, make, match):
    with pytest.raises(DecodeError, match=match) as info:
        decode_image(make(group_jpg.read_bytes()), fmt, name="photo.jpg")
    assert str(info.value).startswith("photo.jpg: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["bgr24", "nv12"])
def test_corrupt_scan_data_is_an_error(group_jpg, fmt):
    with pytest.raises(DecodeError, match="corrupt"):
        decode_image(_damage(group_jpg.read_bytes()), fmt, name="photo.jpg")


def test_truncated_png_is_an_error(tmp_path, make_image):
    ok, buf = cv2.imencode(".png", make_image(64, 64))
    path = tmp_path / "cut.png"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(DecodeError, match=str(path)):
        read_image(path)


@pytest.mark.parametrize(("path", "error", "match"), [
    ("missing.jpg", InputFileError, "no such image file"),
    (".", InputFileError, "is a directory"),
])
def test_read_image_file_errors(tmp_path, path, error, match):
    with pytest.raises(error, match=match):
        read_image(tmp_path / path)


@pytest.mark.parametrize("sub", ["444", "422", "420"])
@pytest.mark.parametrize("quality", [50, 95])
def test_encode_jpeg_from_rgb(make_image, sub, quality):
    bgr = make_image(64, 48)
    data = encode_jpeg(bgr, quality=quality, subsampling=sub)
    assert simplejpeg.decode_jpeg_header(data)[3] == sub
    assert np.abs(decode_image(data).astype(int) - bgr).mean() < (3 if quality == 95 else 6)


@pytest.mark.parametrize("fmt", ["nv12", "nv21", "i420"])
def test_encode_jpeg_from_yuv_planes(group_jpg, fmt):
    frame = read_frame(group_jpg, fmt, "dvpp_jpegd")
    data = encode_jpeg(frame, quality=95)
    assert simplejpeg.decode_jpeg_header(data)[:2] == (886, 1280)
    again = decode_frame(data, fmt)
    assert np.abs(again.to_array().astype(int) - frame.to_array()).mean() < 1.5


def test_encode_limited_range_frame_is_converted_to_jpeg_range(make_image):
    bgr = make_image(32, 32)
    limited = convert(Frame.from_array(bgr, "bgr24"), "nv12", full_range=False)
    assert np.abs(decode_image(encode_jpeg(limited, 98)).astype(int) - bgr).mean() < 3


@pytest.mark.parametrize(("kwargs", "match"), [({"quality": 0}, "quality"),
                                               ({"subsampling": "411x"}, "subsampling")])
def test_encode_jpeg_errors(kwargs, match):
    with pytest.raises(EncodeError, match=match):
        encode_jpeg(np.zeros((8, 8, 3), np.uint8), **kwargs)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".jpg", ".webp"])
def test_write_image_round_trip(tmp_path, make_image, suffix):
    bgr = make_image(40, 24)
    out = write_image(tmp_path / f"o{suffix}", bgr, quality=100)
    tol = 0 if suffix in (".png", ".bmp") else 4
    assert np.abs(read_image(out).astype(int) - bgr).mean() <= tol
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left


def test_write_image_bad_suffix_leaves_nothing(tmp_path):
    with pytest.raises(FormatError, match="suffix"):
        write_image(tmp_path / "o.tiff", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        write_image(tmp_path / "nope" / "o.png", np.zeros((4, 4, 3), np.uint8))


def test_paths_accepted_as_str(group_jpg: Path):
    assert read_image(str(group_jpg)).shape == (886, 1280, 3)


@pytest.mark.parametrize("fmt", ["bgr24", "nv12"])
@pytest.mark.parametrize(("w", "h", "match"), [(30000, 30000, "Mpixel"), (40000, 8, "max side")])
def test_absurd_jpeg_header_refused_before_decoding(fmt, w, h, match):
    data = bytearray(simplejpeg.encode_jpeg(np.zeros((16, 16, 3), np.uint8)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    with pytest.raises(SizeError, match=match):
        decode_image(bytes(data), fmt, name="bomb.jpg")


def _palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """A colour-type-3 (palette) PNG written by hand: OpenCV cannot write one."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    h, w = indices.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in indices.astype(np.uint8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette.astype(np.uint8).tobytes())
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "nv12"])
def test_palette_png_is_expanded(tmp_path, rng, fmt):
    palette = rng.integers(0, 256, (16, 3))
    indices = rng.integers(0, 16, (6, 10))
    path = tmp_path / "pal.png"
    path.write_bytes(_palette_png(indices, palette))
    rgb = palette[indices].astype(np.uint8)
    img = read_image(path, fmt)
    if fmt == "rgb24":
        assert np.array_equal(img, rgb)
    elif fmt == "bgr24":
        assert np.array_equal(img, rgb[..., ::-1])
    else:
        assert img.shape == (9, 10)


@pytest.mark.parametrize("name", ["000000000575.jpg",   # 640x513: odd height, 4:4:4
                                  "000000000034.jpg",   # 640x425
                                  "000000000086.jpg",   # greyscale JPEG
                                  "000000000151.jpg"])
def test_coco_jpeg_to_nv12_equals_the_rgb_route(shared, name):
    """The direct JPEG→NV12 path loses no more than converting the RGB decode would."""
    data = (shared / "data" / "coco256-voc" / "JPEGImages" / name).read_bytes()
    rgb = decode_image(data, "rgb24")
    h, w = rgb.shape[:2]
    direct = decode_frame(data, "nv12", "dvpp_jpegd")
    via_rgb = convert(Frame.from_planes([rgb], "rgb24", w, h), "nv12")
    err_direct = np.abs(direct.to_array("rgb24").astype(int) - rgb).mean()
    err_via = np.abs(via_rgb.to_array("rgb24").astype(int) - rgb).mean()
    assert err_direct <= err_via + 0.1
    assert np.abs(direct.visible_planes()[0].astype(int) - via_rgb.visible_planes()[0]).mean() < 1
