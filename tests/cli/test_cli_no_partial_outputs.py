"""Every CLI command, given a failing input, leaves no output file behind (issue 17).

One row per command (and per way of failing): the command runs in-process with its
outputs pointed into an empty ``out/`` directory.

* ``error`` rows: bad input, exit 2 (or 1 for a batch whose only input failed); after
  it ``out/`` must hold nothing at all: no file, no empty file, no temporary
  ``.name.XXXX`` file, no output directory the command created before failing.
* ``batch`` rows: one good and one corrupt input, exit 1 ("finished with failures");
  what is written for the good input is legitimate, but every file must be complete:
  not empty, no temporary names, JSON lines that parse.

The table is written against the commands as they are (the faces/detect/dpm commands
are moving to a shared runner): a row whose options no longer exist fails with
"table out of date" rather than passing on a usage error. Rows that leave partial
outputs today are ``xfail(strict=True)`` with what they leave, so that a fix shows up.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

PARTIAL = "leaves a partial output today (issue 17 report); remove the mark once fixed"


def _inputs(root: Path) -> dict[str, Path]:
    """Small failing (and good) inputs, made here."""
    import simplejpeg

    from viewfinder.media.video import VideoWriter

    root.mkdir()
    y, x = np.mgrid[0:48, 0:64]
    img = np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)
    jpeg = simplejpeg.encode_jpeg(img, 90, "RGB")
    files = {"good.jpg": jpeg, "bad.jpg": jpeg[: len(jpeg) // 2],
             "garbage.mp4": b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4,
             "bad.yuv": b"\x80" * 100, "garbage.onnx": b"\x08\x07garbage" * 50,
             "garbage.mat": b"MATLAB 5.0 MAT-file" + b"\x00" * 200,
             "bad.jsonl": b'{"image_id": "1", "label": "person", "score": 0.5}\n',
             "bad.cfg": b"[net]\nwidth=33\n", "bad.toml": b"[preprocess]\ninput = 5\n"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "mixed").mkdir()
    (root / "mixed/a_good.jpg").write_bytes(jpeg)
    (root / "mixed/b_bad.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "empty").mkdir()
    with VideoWriter(root / "h265.mp4", 25, "h265", preset="ultrafast") as writer:
        for i in range(3):
            writer.write(np.roll(img, i, axis=1))
    with VideoWriter(root / "ten.mp4", 25, "h264", preset="ultrafast") as writer:
        for i in range(10):
            writer.write(np.random.default_rng(i).integers(0, 255, img.shape, np.uint8))
    video = (root / "ten.mp4").read_bytes()
    mdat = video.index(b"mdat")  # the index comes first: cut the frames' data in half
    (root / "cut.mp4").write_bytes(video[:mdat + (len(video) - mdat) // 2])
    voc = root / "badvoc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "ImageSets/Main").mkdir(parents=True)
    (voc / "ImageSets/Main/train.txt").write_text("a\nb\n")
    (voc / "ImageSets/Main/test.txt").write_text("a\nb\n")
    (voc / "Annotations/a.xml").write_text(
        "<annotation><size><width>64</width><height>48</height></size><object><name>person"
        "</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>40</xmax><ymax>40</ymax></bndbox>"
        "</object></annotation>")
    (voc / "Annotations/b.xml").write_text("<annotation><size>")  # malformed, read later
    (voc / "JPEGImages/a.jpg").write_bytes(jpeg)
    (voc / "JPEGImages/b.jpg").write_bytes(jpeg)
    return {p.name: p for p in root.iterdir()}


# id, argv ({in} inputs, {out} outputs, {shared} shared data), kind, needs, xfail reason
ROWS = [
    ("media-to-yuv", "media to-yuv {in}/bad.jpg -o {out}/x.yuv", "error", (), None),
    ("media-from-yuv", "media from-yuv {in}/bad.yuv --size 64x48 -o {out}/x.png", "error", (),
     None),
    ("media-resize-bad-image", "media resize {in}/bad.jpg -o {out}/x.jpg --size 32x32", "error",
     (), None),
    ("media-resize-bad-suffix", "media resize {in}/good.jpg -o {out}/x.tiff --size 32x32",
     "error", (), None),
    ("media-demux-garbage", "media demux {in}/garbage.mp4 -o {out}/x.h264", "error", (), None),
    ("media-demux-wrong-suffix", "media demux {in}/h265.mp4 -o {out}/x.h264", "error", (), None),
    ("media-frames", "media frames {in}/garbage.mp4 -o {out}/frames", "error", (), None),
    ("media-frames-cut-video", "media frames {in}/cut.mp4 -o {out}/frames", "batch", (), None),
    ("media-frames-cut-video-yuv", "media frames {in}/cut.mp4 -o {out}/frames --format yuv",
     "batch", (), None),
    ("media-encode-late", "media encode {in}/good.jpg {in}/bad.jpg -o {out}/x.mp4", "error", (),
     None),
    ("models-fetch-offline", "models fetch 2d106det", "error", ("offline",), None),
    ("convert-garbage", "convert {in}/garbage.onnx -o {out}/x.onnx", "error", (), None),
    ("convert-bad-config", "convert {shared}/models/face/yunet_s.onnx --config {in}/bad.toml "
     "-o {out}/x.onnx", "error", ("shared",), None),
    ("convert-int8-empty-calib", "convert {shared}/models/face/yunet_s.onnx --int8 --calib "
     "{in}/empty -o {out}/x.onnx", "error", ("shared",), None),
    ("bench-garbage", "bench --model {in}/garbage.onnx --json {out}/b.json --csv {out}/b.csv "
     "--out {out}/tensors", "error", (), None),
    ("bench-bad-input", "bench --model {shared}/models/face/yunet_s.onnx --input {in}/bad.jpg "
     "--loop 1 --warmup 0 --json {out}/b.json --csv {out}/b.csv --out {out}/tensors", "error",
     ("shared",), None),
    ("faces-bad-image", "faces {in}/bad.jpg --landmarks none --out {out}/f.jpg --json "
     "{out}/f.jsonl", "error", ("shared",), None),
    ("faces-batch", "faces {in}/mixed --landmarks none --out {out}/faces --json {out}/f.jsonl",
     "batch", ("shared",), None),
    ("detect-bad-image", "detect {in}/bad.jpg --out {out}/d.jpg --json {out}/d.jsonl", "error",
     ("shared",), None),
    ("detect-batch", "detect {in}/mixed --out {out}/dets --json {out}/d.jsonl", "batch",
     ("shared",), None),
    ("dpm-detect-bad-image", "dpm detect {in}/bad.jpg --model INRIA_person --out {out}/p.jpg "
     "--json {out}/p.jsonl", "error", ("shared",), None),
    ("dpm-detect-batch", "dpm detect {in}/mixed --model INRIA_person --out {out}/dets "
     "--json {out}/p.jsonl", "batch", ("shared",), None),
    ("dpm-show-model", "dpm show-model {in}/garbage.mat -o {out}/m.png", "error", (), None),
    ("dpm-train-bad-voc", "dpm train --voc {in}/badvoc --class person --out {out}/run --small",
     "error", (), None),
    ("eval-voc-bad-detections", "eval voc --detections {in}/bad.jsonl --voc {in}/badvoc "
     "--split test --pr-curve {out}/pr.png --json {out}/e.json", "error", (), None),
    ("train-yolo-bad-cfg", "train yolo --data {in}/badvoc --cfg {in}/bad.cfg --epochs 1 "
     "--out {out}/run --no-eval", "error", ("torch",), None),
]


def _leftovers(out: Path) -> list[str]:
    """Files anywhere under ``out`` and the output directories a command created
    (a model cache's own directories are not outputs)."""
    return sorted(str(p.relative_to(out)) + ("/" if p.is_dir() else "")
                  for p in out.rglob("*")
                  if p.is_file() or (p.parent == out and p.name != "cache"))


def _check_batch(out: Path) -> list[str]:
    """Problems with the files of a batch that finished with failures."""
    bad = []
    for p in out.rglob("*"):
        if p.is_dir():
            continue
        if p.name.startswith(".") or p.stat().st_size == 0:
            bad.append(f"{p.relative_to(out)} ({p.stat().st_size} bytes)")
        elif p.suffix == ".jsonl":
            for line in p.read_text().splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    bad.append(f"{p.relative_to(out)}: cut line {line[:60]!r}")
    return bad


def _params() -> list:
    out = []
    for row_id, argv, kind, needs, reason in ROWS:
        marks = [pytest.mark.xfail(strict=True, reason=f"{PARTIAL}: {reason}")] if reason else []
        out.append(pytest.param(argv, kind, needs, id=row_id, marks=marks))
    return out


@pytest.mark.parametrize(("argv", "kind", "needs"), _params())
def test_failing_input_leaves_no_partial_output(argv: str, kind: str, needs: tuple[str, ...],
                                                tmp_path: Path, run_cli, request,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    shared = request.getfixturevalue("shared") if "shared" in needs else Path("/nonexistent")
    if "torch" in needs and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    out = tmp_path / "out"
    out.mkdir()
    if "offline" in needs:  # nothing local: fetch must download (no network here) and fail
        monkeypatch.setenv("VIEWFINDER_MODELS", str(tmp_path / "no-models"))
        monkeypatch.setenv("VIEWFINDER_CACHE", str(out / "cache"))
    inputs = _inputs(tmp_path / "in")
    args = argv.format(**{"in": inputs["good.jpg"].parent, "out": out, "shared": shared}).split()
    code, _stdout, err = run_cli(*args)
    assert "No such option" not in err and "Usage:" not in err, \
        f"table out of date for {args[:2]}: {err[-500:]}"
    if kind == "error":
        assert code in (1, 2), f"expected a failure, exit {code}: {err[-500:]}"
        assert _leftovers(out) == [], f"exit {code} but left {_leftovers(out)}: {err[-300:]}"
    else:
        assert code == 1, f"expected 'finished with failures' (1), exit {code}: {err[-500:]}"
        assert _check_batch(out) == [], _check_batch(out)
