"""Pixel limits read from headers before any decoding (issue 17): images, video, raw yuv."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg

from viewfinder.errors import ConfigError, DecodeError, PixelLimitError, SizeError
from viewfinder.media.headers import image_header
from viewfinder.media.image import decode_frame, decode_image
from viewfinder.media.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, check_pixels, max_pixels

IMG = np.dstack(np.mgrid[0:17, 0:33] % 256).astype(np.uint8)[..., [0, 1, 1]].copy()


def _encoded() -> dict[str, bytes]:
    return {
        "jpeg-420": simplejpeg.encode_jpeg(IMG, 90, "RGB", "420"),
        "jpeg-gray": simplejpeg.encode_jpeg(IMG, 90, "RGB", "Gray"),
        "jpeg-progressive": cv2.imencode(".jpg", IMG, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
        "png": cv2.imencode(".png", IMG)[1], "png-16": cv2.imencode(".png", IMG.astype(
            np.uint16) * 257)[1],
        "webp-lossy": cv2.imencode(".webp", IMG, [cv2.IMWRITE_WEBP_QUALITY, 80])[1],
        "webp-lossless": cv2.imencode(".webp", IMG, [cv2.IMWRITE_WEBP_QUALITY, 101])[1],
        "bmp": cv2.imencode(".bmp", IMG)[1], "bmp-gray": cv2.imencode(".bmp", IMG[..., 0])[1],
    }


@pytest.mark.parametrize("kind", sorted(_encoded()))
def test_header_size_is_the_decoded_size(kind: str) -> None:
    data = bytes(_encoded()[kind])
    header = image_header(data)
    assert header.kind == kind.split("-")[0] and (header.width, header.height) == (33, 17)
    assert decode_image(data).shape == (17, 33, 3)


def test_header_of_real_files(shared: Path) -> None:
    for path in sorted((shared / "images").rglob("*.*")):
        data = path.read_bytes()
        h, w = decode_image(data, "gray8").shape
        assert image_header(data, str(path))[1:] == (w, h), path


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    body = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(simplejpeg.encode_jpeg(IMG, 90, "RGB", "420"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _webp_claiming(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (width - 1).to_bytes(3, "little") + \
        (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def _bmp_claiming(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 54) + info


@pytest.mark.parametrize("make", [_png_claiming, _jpeg_claiming, _webp_claiming, _bmp_claiming])
def test_too_many_pixels_refused_before_the_decoder_runs(make, monkeypatch) -> None:
    def never(*_a, **_k):
        raise AssertionError("the decoder ran")

    monkeypatch.setattr(cv2, "imdecode", never)
    monkeypatch.setattr(simplejpeg, "decode_jpeg", never)
    monkeypatch.setattr(simplejpeg, "decode_jpeg_header", never)
    data = make(16000, 12000)  # 192 Mpixel, over the default 134 Mpixel
    with pytest.raises(PixelLimitError, match=r"16000x12000 = 192000000 pixels \(192.0 Mpixel\) "
                                              rf"is over the limit of {DEFAULT_MAX_PIXELS}"
                       ) as info:
        decode_image(data)
    assert (info.value.width, info.value.height, info.value.limit) == (16000, 12000,
                                                                       DEFAULT_MAX_PIXELS)
    with pytest.raises(PixelLimitError):
        decode_frame(data, "nv12")


@pytest.mark.parametrize(("env", "limit"), [("", DEFAULT_MAX_PIXELS), ("1000", 1000),
                                            ("1_000_000", 1_000_000)])
def test_limit_from_the_environment(monkeypatch, env: str, limit: int) -> None:
    monkeypatch.setenv(MAX_PIXELS_ENV, env)
    assert max_pixels() == limit


@pytest.mark.parametrize("env", ["abc", "0", "-5", "1e6"])
def test_bad_limit_in_the_environment(monkeypatch, env: str) -> None:
    monkeypatch.setenv(MAX_PIXELS_ENV, env)
    with pytest.raises(ConfigError, match=MAX_PIXELS_ENV):
        max_pixels()


def test_lowered_limit_refuses_a_small_image(monkeypatch) -> None:
    data = bytes(_encoded()["png"])
    monkeypatch.setenv(MAX_PIXELS_ENV, "500")  # 33 x 17 = 561
    with pytest.raises(PixelLimitError, match=r"33x17 = 561 pixels \(0.0 Mpixel\) is over the limit of 500"):
        decode_image(data)
    check_pixels(33, 17, "x", limit=561)


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated JPEG header"),
    (b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20, "no frame header before the first scan"),
    (b"\xff\xd8\xff\xe0\x00\x01" + b"\0" * 20, "has length 1"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03" + b"\0" * 9, "frame height 0"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "truncated PNG header"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + b"\0" * 12, "first chunk is b'IDAT'"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8Z" + b"\0" * 20, "expected VP8, VP8L or VP8X"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 20, "no VP8 key frame start code"),
    (b"BM" + b"\0" * 12 + b"\x08\x00\x00\x00" + b"\0" * 12, "info header of 8 bytes"),
    (b"GIF89a" + b"\0" * 20, "not an image"),
])
def test_malformed_headers(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        image_header(data, "x")
    with pytest.raises(DecodeError, match=message):
        decode_image(data)


def test_absurd_and_negative_sizes_still_size_errors() -> None:
    with pytest.raises(SizeError, match="must be positive"):
        decode_image(_bmp_claiming(-5, 10))
    with pytest.raises(SizeError):
        decode_image(_png_claiming(0, 10))


def test_yuv_size_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch) -> None:
    from viewfinder.media.yuv import read_yuv

    path = tmp_path / "big.yuv"
    with open(path, "wb") as fh:
        fh.truncate(8000 * 6000 * 3 // 2)  # sparse: the size agrees, nothing is read
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10_000_000))
    with pytest.raises(PixelLimitError, match="8000x6000 = 48000000 pixels"):
        read_yuv(path, 8000, 6000, "nv12")
    with pytest.raises(SizeError, match=r"65x48 NV12 needs 4704 bytes, the file has 72000000"):
        read_yuv(path, 65, 48, "nv12")


def test_video_stream_over_the_limit_is_refused(tmp_path, monkeypatch) -> None:
    from viewfinder.media.video import VideoReader, VideoWriter, probe

    path = tmp_path / "v.mp4"
    with VideoWriter(path, 25, "h264", preset="ultrafast") as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert probe(path).width == 64
    monkeypatch.setenv(MAX_PIXELS_ENV, "3000")
    with pytest.raises(PixelLimitError, match=r"h264 stream: 64x48 = 3072 pixels"):
        probe(path)
    with pytest.raises(PixelLimitError):
        VideoReader(path)
