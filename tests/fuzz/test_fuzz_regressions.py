"""Every crash the fuzz targets found, as a named test with its input (issue 17).

Inputs are inline bytes or tiny files made here (never copies of shared files).
Crashes fixed in this change pass; crashes in files owned by other parts are
``xfail(strict=True)`` with the file and the fix, and are listed in
``fuzz_registry.KNOWN`` so the bounded fuzz runs stay green meanwhile. When the owner
fixes one, its test passes, strict xfail turns it red: remove the mark and the entry.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fuzz_registry import KNOWN

from viewfinder.errors import ViewfinderError


def _one_line(exc: BaseException) -> None:
    assert str(exc).strip() and "\n" not in str(exc)


def _png(width: int, height: int, chunks: list[tuple[bytes, bytes]]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, b) for k, b in chunks)


# --------------------------------------------------------------------------- fixed here
def test_png_chunk_claiming_2gib_is_refused_before_opencv_allocates_it() -> None:
    """Found by the image target: a 48x32 PNG whose IDAT length field says 2**31 made
    OpenCV 5's reader allocate 2 GB and spend 3.5 s per decode. Fixed in
    media/headers.py (check_png_chunks, called from media/image.py before OpenCV)."""
    from viewfinder.errors import DecodeError
    from viewfinder.media.image import decode_image

    good = _png(48, 32, [(b"IDAT", zlib.compress(b"\0" * (1 + 48 * 3) * 32)), (b"IEND", b"")])
    assert decode_image(good).shape == (32, 48, 3)
    at = good.index(b"IDAT") - 4
    bomb = good[:at] + struct.pack(">I", 1 << 31) + good[at + 4:]
    with pytest.raises(DecodeError, match=r"chunk 'IDAT' at byte 33 claims 2147483648 bytes"):
        decode_image(bomb)
    cut = good[:at] + struct.pack(">I", 1 << 20) + good[at + 4:]
    with pytest.raises(DecodeError, match=r"truncated PNG \(chunk 'IDAT' at byte 33 claims "
                                          r"1048576 bytes"):
        decode_image(cut, "nv12")


# --------------------------------------------------------------------------- fixed since
# Found by the video target (UnicodeDecodeError @ viewfinder/media/video/_open.py):
# an MP4 whose metadata is not UTF-8; PyAV decodes container metadata while opening.
_MP4_BAD_METADATA = base64.b64decode(
    "AAAAIGZ0eXBpc29tAAACAIAAAABpc28yYXZjMW1wNDEAAAMpbW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAA"
    "APAAAQAAAQAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAgAAAlN0cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAAPAAAAAAAAAAAAAA"
    "AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAB")


def test_mp4_with_non_utf8_metadata_is_a_decode_error(tmp_path: Path) -> None:
    from viewfinder.media.video import probe

    path = tmp_path / "bad_metadata.mp4"
    path.write_bytes(_MP4_BAD_METADATA)
    with pytest.raises(ViewfinderError) as info:
        probe(path)
    _one_line(info.value)


def _tiny_h264_mp4(path: Path) -> Path:
    from viewfinder.media.video import VideoWriter

    with VideoWriter(path, 25, "h264", crf=35, preset="ultrafast") as writer:
        for i in range(3):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    return path


def test_demux_of_a_malformed_avcc_is_a_decode_error(tmp_path: Path) -> None:
    """Found by the video target on one_face_640x480_h264.mp4: avcC numOfSPS 1 -> 8."""
    from viewfinder.media.video import demux

    src = _tiny_h264_mp4(tmp_path / "ok.mp4")
    data = bytearray(src.read_bytes())
    data[data.index(b"avcC") + 9] = 0xE8  # 8 SPS announced, one present
    bad = tmp_path / "bad_avcc.mp4"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.h264"
    with pytest.raises(ViewfinderError) as info:
        demux(bad, out)
    _one_line(info.value)
    assert not out.exists()


_YOLO_CFG = "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=21\nsize=1\n" \
            "stride=1\npad=1\nactivation=linear\n[yolo]\nanchors=10,14\nnum={num}\n"


def test_yolo_num_out_of_range_is_a_config_error() -> None:
    from viewfinder.detect.darknet_cfg import parse_cfg_text
    from viewfinder.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_cfg_text(_YOLO_CFG.format(num=2 ** 70))
    _one_line(info.value)


def test_detections_line_nested_deeply_is_a_format_error(tmp_path: Path) -> None:
    from viewfinder.eval.detfile import read_detections

    path = tmp_path / "dets.jsonl"
    path.write_bytes(b"[" * 100_000 + b"\n")
    with pytest.raises(ViewfinderError):
        read_detections(path)


def test_devkit_detections_file_not_utf8_is_a_format_error(tmp_path: Path) -> None:
    from viewfinder.eval.detfile import read_detections

    path = tmp_path / "comp4_det_test_person.txt"
    path.write_bytes(b"000001 0.9 1 2 3 4\n\xff\xfe\n")
    with pytest.raises(ViewfinderError):
        read_detections(path)


@pytest.mark.parametrize("text", ["[shape]\nbatch = inf\n", "[preprocess]\nscale = 0\n",
                                  "[preprocess]\nscale = [1, 0, 1]\n"])
def test_convert_config_numbers_out_of_range_are_config_errors(tmp_path: Path,
                                                               text: str) -> None:
    from viewfinder.errors import ConfigError
    from viewfinder.runtime.convert.config import load_config

    path = tmp_path / "convert.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    _one_line(info.value)


@pytest.mark.parametrize("text", ["[preprocess]\ninput = \"rgb\"\nmean = nan\n",
                                  "[preprocess]\ninput = \"rgb\"\nstd = [inf, 1, 1]\n",
                                  "[preprocess]\ninput = \"rgb\"\nscale = nan\n"])
def test_convert_config_non_finite_mean_or_std_is_a_config_error(tmp_path: Path,
                                                                  text: str) -> None:
    """Found by the convert_toml target (invalid result: mean=(nan, nan, nan) accepted)."""
    from viewfinder.errors import ConfigError
    from viewfinder.runtime.convert.config import load_config

    path = tmp_path / "convert.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


def test_dpm_rule_with_2d_rhs_is_a_model_error(shared: Path, tmp_path: Path) -> None:
    """Found by the dpm_mat target: a deformation rule whose ``rhs`` is a 2x2 array."""
    import scipy.io

    from viewfinder.dpm.model import load_voc_release5
    from viewfinder.errors import ModelError

    mat = scipy.io.loadmat(shared / "models/dpm/voc-release5/INRIA_inriaperson_final.mat")
    rules = mat["model"]["rules"][0, 0].reshape(-1)
    deform = next(c for c in rules if c.size and str(c["type"].reshape(-1)[0][0]) == "D")
    deform["rhs"].reshape(-1)[0] = np.array([[5.0, 6.0], [7.0, 8.0]])
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"model": mat["model"]})
    path = tmp_path / "rhs_2d.mat"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelError) as info:
        load_voc_release5(path)
    _one_line(info.value)


def test_dpm_text_start_symbol_is_a_model_error(shared: Path, tmp_path: Path) -> None:
    """Found by the dpm_mat target (atheris): ``model.start`` replaced by the text 'x'."""
    import scipy.io

    from viewfinder.dpm.model import load_voc_release5
    from viewfinder.errors import ModelError

    mat = scipy.io.loadmat(shared / "models/dpm/voc-release5/INRIA_inriaperson_final.mat")
    model = mat["model"]
    model["start"].reshape(-1)[0] = "x"
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"model": model})
    path = tmp_path / "start_x.mat"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelError) as info:
        load_voc_release5(path)
    _one_line(info.value)


# Found by the dpm_mat target (SIGSEGV): a 504-byte MAT file, a small struct saved by
# scipy.io.savemat with an empty 8-byte data-element tag inserted inside its nested struct.
_MAT_SEGV = b"MATLAB 5.0 MAT-file, viewfinder fuzz regression".ljust(116, b" ") + \
    base64.b64decode(
        "AAAAAAAAAAAAAUlNDgAAAGgBAAAGAAAACAAAAAIAAAAAAAAABQAAAAgAAAABAAAAAQAAAAEAAAAFAAAAbW9kZWwA"
        "AAAFAAQAAgAAAAEAAAAGAAAAYQBiAGMAAAAOAAAASAAAAAYAAAAIAAAABgAAAAAAAAAFAAAACAAAAAEAAAADAAAA"
        "AQAAAAAAAAAAAAAAAAAAAAkAAAAYAAAAAAAAAAAAAAAAAAAAAADwPwAAAAAAAABADgAAADAAAAAGAAAACAAAAAQA"
        "AAAAAAAABQAAAAgAAAABAAAAAgAAAAEAAAAAAAAAEAACAHh5AAAOAAAAkAAAAAYAAAAIAAAAAgAAAAAAAAAFAAAA"
        "CAAAAAEAAAABAAAAAQAAAAAAAAAFAAQAAgAAAAEAAgBkAAAADgAAAFAAAAAGAAAACAAAAAYAAAAAAAAABQAAAAgA"
        "AAACAAAAAgAAAAEAAAAAAAAACQAAACAAAAAAAAAAAADwPwAAAAAAAPA/AAAAAAAA8D8AAAAAAADwPw==")


def test_dpm_mat_that_segfaults_scipy_is_a_model_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "segv.mat"
    path.write_bytes(_MAT_SEGV)
    code = ("import sys\nfrom viewfinder.dpm.model import load_voc_release5\n"
            "from viewfinder.errors import ViewfinderError\ntry:\n"
            "    load_voc_release5(sys.argv[1])\nexcept ViewfinderError as e:\n"
            "    print(type(e).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode} (a negative one is a signal)"
    assert proc.stdout.strip() == "ModelError"


def test_every_known_crash_has_a_regression_test() -> None:
    """KNOWN (what the fuzz runs tolerate) names only crashes that have a test above."""
    tested = {
        "UnicodeDecodeError @ viewfinder/media/video/_open.py",
        "InvalidDataError @ viewfinder/media/video/demux.py",
        "MemoryError @ viewfinder/detect/darknet_cfg.py",
        "OverflowError @ viewfinder/detect/darknet_cfg.py",
        "RecursionError @ viewfinder/eval/detfile.py",
        "UnicodeDecodeError @ viewfinder/eval/detfile.py",
        "OverflowError @ viewfinder/runtime/convert/config.py",
        "ZeroDivisionError @ viewfinder/runtime/convert/config.py",
        "TypeError @ viewfinder/dpm/model.py",
        "ValueError @ viewfinder/dpm/model.py",
        "SIGSEGV @ dpm_mat",
        "PropertyViolation @ mean/std not finite",
    }
    listed = set().union(*KNOWN.values()) if KNOWN else set()
    assert listed <= tested, sorted(listed - tested)
