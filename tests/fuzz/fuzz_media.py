"""Fuzz targets of viewfinder.media: image headers and decode, MP4 / Annex-B video, raw .yuv."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from fuzz_core import (
    GENERIC,
    NUMBERS,
    Chooser,
    Field,
    PropertyViolation,
    Target,
    field_op,
    png_crc_fix,
    span_op,
)


# --------------------------------------------------------------------------- images
def _picture(w: int = 48, h: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 5 % 256, y * 7 % 256, (x + y) * 3 % 256]).astype(np.uint8)


def image_seeds(shared: Path | None) -> list[bytes]:
    """Small images of every kind and layout the decoders take, plus real files."""
    import cv2
    import simplejpeg

    img = _picture()
    odd = np.ascontiguousarray(_picture(33, 17))
    seeds = [simplejpeg.encode_jpeg(img, 90, "RGB", sub) for sub in ("420", "422", "444", "Gray")]
    seeds.append(simplejpeg.encode_jpeg(odd, 80, "RGB", "420"))
    seeds.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes())
    seeds += [cv2.imencode(".png", a)[1].tobytes() for a in (
        img, img[..., 0], np.dstack([img, img[..., :1]]), img.astype(np.uint16) * 257)]
    seeds.append(cv2.imencode(".png", img, [cv2.IMWRITE_PNG_BILEVEL, 0])[1].tobytes())
    seeds.append(cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes())
    seeds.append(cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes())
    seeds += [cv2.imencode(".bmp", a)[1].tobytes() for a in (img, img[..., 0])]
    if shared is not None:
        for rel in ("images/aligned_face_112.png", "images/voc2007/000084.jpg"):
            if (shared / rel).is_file():
                seeds.append((shared / rel).read_bytes())
    return seeds


def _jpeg_fields(data: bytes) -> list[Field]:
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        out.append(Field(pos + 2, 2))
        body = pos + 4
        if marker in (0xC0, 0xC1, 0xC2):  # precision, height, width, components
            out += [Field(body, 1), Field(body + 1, 2), Field(body + 3, 2), Field(body + 5, 1)]
            out += [Field(body + 6 + i, 1) for i in range(9)]
        elif marker == 0xDA:  # components, selectors, spectral selection, approximation
            out += [Field(body + i, 1) for i in range(min(length - 2, 10))]
            break
        elif marker in (0xC4, 0xDB, 0xDD):  # table ids, counts, restart interval
            out += [Field(body + i, 1) for i in range(min(length - 2, 17))]
        pos += 2 + length
    return out


def _jpeg_spans(data: bytes) -> list[tuple[int, int]]:
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        out.append((pos, end))
        if data[pos + 1] == 0xDA:
            step = max(1, (len(data) - end) // 4)
            out += [(a, min(len(data), a + step)) for a in range(end, len(data), step)]
            break
        pos = end
    return out


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    out, pos = [], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        out.append((pos, length, data[pos + 4:pos + 8]))
        pos += 12 + length
    return out


def _png_fields(data: bytes) -> list[Field]:
    out = []
    for pos, _length, kind in _png_chunks(data):
        out.append(Field(pos, 4))
        if kind == b"IHDR":
            out += [Field(pos + 8, 4), Field(pos + 12, 4)] + [Field(pos + 16 + i, 1)
                                                              for i in range(5)]
    return out


def _webp_fields(data: bytes) -> list[Field]:
    out = [Field(4, 4, "little"), Field(16, 4, "little")]
    kind = data[12:16]
    if kind == b"VP8 ":
        out += [Field(26, 2, "little"), Field(28, 2, "little"), Field(20, 3, "little")]
    elif kind == b"VP8L":
        out += [Field(20, 1), Field(21, 4, "little")]
    elif kind == b"VP8X":
        out += [Field(20, 1), Field(24, 3, "little"), Field(27, 3, "little")]
    return out


def _bmp_fields(data: bytes) -> list[Field]:
    spec = [(2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2), (30, 4), (34, 4),
            (46, 4)]
    return [Field(o, s, "little") for o, s in spec]


def image_fields(data: bytes) -> list[Field]:
    if data.startswith(b"\xff\xd8"):
        return _jpeg_fields(data)
    if data.startswith(b"\x89PNG"):
        return _png_fields(data)
    if data.startswith(b"RIFF"):
        return _webp_fields(data)
    return _bmp_fields(data) if data.startswith(b"BM") else []


def image_spans(data: bytes) -> list[tuple[int, int]]:
    if data.startswith(b"\xff\xd8"):
        return _jpeg_spans(data)
    if data.startswith(b"\x89PNG"):
        return [(p, p + 12 + n) for p, n, _ in _png_chunks(data)]
    return []


def _fix_crc(ch: Chooser, data: bytes) -> bytes:
    return png_crc_fix(data)


def _check_image(img: np.ndarray, width: int, height: int, shape: tuple[int, ...]) -> None:
    if img.dtype != np.uint8 or img.shape != shape:
        raise PropertyViolation(f"decoded {img.dtype} {img.shape}, header says {width}x{height}"
                                f" (expected {shape})")


def image_run(data: bytes, workdir: Path) -> None:
    """Header, then decode to BGR and to a YUV frame; sizes must be the header's."""
    from viewfinder.media.headers import image_header
    from viewfinder.media.image import decode_frame, decode_image

    w, h = image_header(data)[1:]  # decode_image reads it first, so it fails alike
    img = decode_image(data, "bgr24")
    _check_image(img, w, h, (h, w, 3))
    fmt = ("nv12", "i420", "gray8")[len(data) % 3]
    frame = decode_frame(data, fmt, align=(16, 2) if len(data) % 2 else None)
    if (frame.width, frame.height) != (w, h):
        raise PropertyViolation(f"frame {frame.width}x{frame.height}, header says {w}x{h}")


IMAGE = Target(
    "image", image_seeds, image_run,
    ops=[field_op(image_fields)] * 4 + [span_op(image_spans)] * 2 + [_fix_crc] * 2 + GENERIC,
    modules=("viewfinder.media.headers", "viewfinder.media.image", "viewfinder.media.limits"),
)


# --------------------------------------------------------------------------- video
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex",
               b"moof", b"traf", b"udta"}


def _boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0
           ) -> list[tuple[int, int, bytes]]:
    out, pos, end = [], start, len(data) if end is None else end
    while pos + 8 <= end and depth < 6:
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if size < 8 or pos + size > end:
            break
        out.append((pos, size, kind))
        if kind in _CONTAINERS:
            out += _boxes(data, pos + 8, pos + size, depth + 1)
        elif kind == b"stsd" and size > 16:  # sample entries: avc1 / hvc1 and their config
            entry = pos + 16
            out += [(entry, int.from_bytes(data[entry:entry + 4], "big"), data[entry + 4:entry + 8])]
            out += _boxes(data, entry + 86, min(end, pos + size), depth + 2)
        pos += size
    return out


def _nal_starts(data: bytes) -> list[int]:
    out, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0 and len(out) < 4000:
        out.append(pos)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return out


def video_fields(data: bytes) -> list[Field]:
    if data[4:8] != b"ftyp":
        starts = _nal_starts(data[:200_000])
        out = []
        for a, b in zip(starts, starts[1:] + [len(data)], strict=True):
            out.append(Field(a + 3, 1))
            if b - a < 128:  # parameter sets and SEI: every byte
                out += [Field(i, 1) for i in range(a + 4, b)]
        return out
    out = []
    for pos, size, kind in _boxes(data):
        out.append(Field(pos, 4))
        if kind != b"mdat" and size <= 2048:
            out += [Field(i, 4) for i in range(pos + 8, pos + size - 3, 4)]
            if kind in (b"avc1", b"hvc1", b"hev1"):
                out += [Field(pos + 32, 2), Field(pos + 34, 2)]
    return out


def video_spans(data: bytes) -> list[tuple[int, int]]:
    if data[4:8] == b"ftyp":
        return [(p, p + s) for p, s, _ in _boxes(data)]
    starts = _nal_starts(data[:200_000])
    return list(zip(starts, starts[1:] + [len(data)], strict=True))[:400]


def video_seeds(shared: Path | None) -> list[bytes]:
    """Tiny H.264 / H.265 MP4s and Annex-B streams made here, plus real files."""
    import tempfile

    from viewfinder.media.video import VideoWriter, demux

    seeds = []
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("h264", "h265"):
            path = Path(tmp) / f"{codec}.mp4"
            with VideoWriter(path, 25, codec, crf=35, preset="ultrafast") as writer:
                for i in range(6):
                    writer.write(np.roll(_picture(64, 48), 3 * i, axis=1))
            seeds.append(path.read_bytes())
            raw = Path(tmp) / ("a.h264" if codec == "h264" else "a.h265")
            demux(path, raw)
            seeds.append(raw.read_bytes())
    if shared is not None:
        mp4 = shared / "video/one_face_640x480_h264.mp4"
        if mp4.is_file():
            seeds.append(mp4.read_bytes())
        raw = shared / "video/group_pan_640x480.h264"
        if raw.is_file():
            seeds.append(raw.read_bytes()[:60_000])
    return seeds


def _video_suffix(data: bytes) -> str:
    if data[4:8] == b"ftyp":
        return ".mp4"
    start = data.find(b"\x00\x00\x01")
    if start >= 0 and start + 3 < len(data) and (data[start + 3] >> 1) & 0x3F == 32:
        return ".h265"
    return ".h264" if start >= 0 else ".mkv"


def video_run(data: bytes, workdir: Path) -> None:
    """probe, decode up to 3 frames, demux: errors are ViewfinderErrors, no partial output."""
    from viewfinder.media.video import VideoReader, demux, probe

    src = workdir / f"in{_video_suffix(data)}"
    src.write_bytes(data)
    info = probe(src)
    if info.width <= 0 or info.height <= 0 or info.frames < 0:
        raise PropertyViolation(f"probe gave {info}")
    fmt = ("bgr24", "nv12", "gray8")[len(data) % 3]
    with VideoReader(src, fmt=fmt, max_frames=3, threads=1) as reader:
        for frame in reader:
            if frame.image.dtype != np.uint8 or frame.image.ndim not in (2, 3):
                raise PropertyViolation(f"frame {frame.index}: {frame.image.shape}")
    out = workdir / ("out.h265" if src.suffix == ".h265" else "out.h264")
    try:
        demux(src, out)
    except Exception:
        _no_partial(workdir, {src.name})
        raise
    out.unlink()


def _no_partial(workdir: Path, keep: set[str]) -> None:
    left = sorted(p.name for p in workdir.iterdir() if p.name not in keep)
    if left:
        raise PropertyViolation(f"failed, but left {left} behind")


VIDEO = Target(
    "video", video_seeds, video_run,
    ops=[field_op(video_fields)] * 4 + [span_op(video_spans)] * 2 + GENERIC,
    modules=("viewfinder.media.video._open", "viewfinder.media.video.reader",
             "viewfinder.media.video.demux", "viewfinder.media.limits"),
    input_seconds=20.0,
)


# --------------------------------------------------------------------------- raw yuv
_YUV = struct.Struct("<iiBBiI")  # width, height, format, alignment, index, file bytes
_FORMATS = ("nv12", "nv21", "i420", "rgb24", "bgr24", "gray8", "yuyv", "")
_ALIGNS = (None, "none", "dvpp_jpegd", "dvpp_vpc", "64x4", "0x0", "5000x2", "bogus", (3, 5))
_MAX_FILE = 16 << 20


def _yuv_params(data: bytes) -> tuple[int, int, str, object, int, int, str]:
    w, h, f, a, index, nbytes = _YUV.unpack_from(data.ljust(_YUV.size, b"\0"))
    text = data[_YUV.size:_YUV.size + 40].decode("utf-8", "replace")
    return (w, h, _FORMATS[f % len(_FORMATS)], _ALIGNS[a % len(_ALIGNS)], index,
            nbytes % _MAX_FILE, text)


def yuv_seeds(shared: Path | None) -> list[bytes]:
    from viewfinder.media.yuv import frame_bytes

    seeds = []
    for w, h, f, a, n in ((64, 48, 0, 0, 1), (33, 17, 2, 2, 2), (1024, 683, 0, 2, 1),
                          (20, 10, 3, 3, 3), (7, 5, 5, 1, 1)):
        size = frame_bytes(w, h, _FORMATS[f], _ALIGNS[a]) * n
        seeds.append(_YUV.pack(w, h, f, a, n - 1, size) + f"{w}x{h}".encode())
    return seeds


def yuv_run(data: bytes, workdir: Path) -> None:
    """read_yuv with a user-given size against a file of some size; parse_size on text."""
    from viewfinder.media.yuv import frame_bytes, parse_size, read_yuv

    w, h, fmt, align, index, nbytes, text = _yuv_params(data)
    try:
        pw, ph = parse_size(text)
        if pw <= 0 or ph <= 0:
            raise PropertyViolation(f"parse_size({text!r}) = {(pw, ph)}")
    except Exception as exc:
        from viewfinder.errors import ViewfinderError

        if not isinstance(exc, ViewfinderError):
            raise
    path = workdir / "in.yuv"
    with open(path, "wb") as fh:
        fh.truncate(nbytes)
    frame = read_yuv(path, w, h, fmt, align, index)
    if frame.data.nbytes != frame_bytes(w, h, fmt, align):
        raise PropertyViolation(f"frame buffer {frame.data.nbytes} bytes for {w}x{h} {fmt}")
    frame.to_array()


def _yuv_size_op(ch: Chooser, data: bytes) -> bytes:
    """Make the file size agree (or nearly) with what the size fields imply."""
    from viewfinder.media.yuv import frame_bytes

    w, h, f, a, index, _nbytes = _YUV.unpack_from(data.ljust(_YUV.size, b"\0"))
    try:
        one = frame_bytes(w, h, _FORMATS[f % len(_FORMATS)], _ALIGNS[a % len(_ALIGNS)])
    except Exception:
        return data
    size = one * ch.int(0, 3) + ch.choice([0, 0, 1, -1, 2, one // 2])
    return _YUV.pack(w, h, f, a, index, max(0, size) % (1 << 32)) + data[_YUV.size:]


def _yuv_text_op(ch: Chooser, data: bytes) -> bytes:
    text = ch.choice(["64x48", "0x0", "-4x4", "1920X1080", "1920*1080", "x", "1x2x3",
                      "99999999999x1", " 640 x 480 ", "6.4x4", "１x１"]
                     + [f"{a}x{b}" for a, b in zip(NUMBERS[:8], NUMBERS[8:16], strict=True)])
    return data[:_YUV.size] + text.encode()


YUV = Target(
    "yuv", yuv_seeds, yuv_run,
    ops=[field_op(lambda d: [Field(0, 4, "little"), Field(4, 4, "little"), Field(8, 1),
                             Field(9, 1), Field(10, 4, "little"), Field(14, 4, "little")])] * 3
    + [_yuv_size_op] * 3 + [_yuv_text_op] + GENERIC,
    modules=("viewfinder.media.yuv", "viewfinder.media.frame", "viewfinder.media.limits"),
)
