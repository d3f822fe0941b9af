"""``viewfinder train yolo`` on a tiny synthetic VOC set: runs, prints the scale, resumes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from viewfinder.datasets.voc import Annotation, VOCObject, VOCWriter  # noqa: E402

CFG = "[net]\nwidth=64\nheight=64\nchannels=3\nhue=0\nsaturation=1\nexposure=1\n" + "".join(
    f"[convolutional]\nbatch_normalize=1\nfilters={f}\nsize=3\nstride={s}\npad=1\n"
    "activation=leaky\n" for f, s in ((8, 2), (16, 2), (16, 2))) + (
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=8,8, 16,16, 32,32\nclasses=2\nnum=3\njitter=0\n")



@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    writer = VOCWriter(root / "VOC")
    rng = np.random.default_rng(0)
    ids = []
    for i in range(8):
        img = np.full((48, 64, 3), 90, np.uint8)
        x, y, s = int(rng.integers(0, 40)), int(rng.integers(0, 24)), int(rng.integers(10, 20))
        name = ("red", "blue")[i % 2]
        img[y:y + s, x:x + s] = (255, 0, 0) if name == "red" else (0, 0, 255)  # RGB
        writer.add(f"{i:04d}", img, Annotation(64, 48, (VOCObject(name, (x + 1, y + 1, x + s,
                                                                         y + s)),)))
        ids.append(f"{i:04d}")
    writer.write_split("train", ids[:6])
    writer.write_split("test", ids[6:])
    (root / "small.cfg").write_text(CFG)
    (root / "names.txt").write_text("red\nblue\n")
    return root


def _args(voc, out, *extra):
    return ("train", "yolo", "--data", voc / "VOC", "--cfg", voc / "small.cfg", "--names",
            voc / "names.txt", "--batch", 3, "--lr", 0.01, "--out", out, *extra)


def test_train_prints_scale_every_step_then_resumes(run_cli, voc, tmp_path) -> None:
    code, out, err = run_cli(*_args(voc, tmp_path, "--epochs", 2, "--loss-scale", "static:1024",
                                    "--amp", "bf16"))
    assert code == 0, err
    steps = [line for line in out.splitlines() if line.startswith("iter")]
    assert len(steps) == 4 and all("scale 1024" in s for s in steps)
    assert "0 overflowed steps skipped" in out and "VOC07 mAP over 2 classes" in out
    for name in ("final.weights", "last.pt", "metrics.json"):
        assert (tmp_path / name).is_file()
    # Darknet weights of the right size for the cfg (header 20 bytes)
    from viewfinder.detect.darknet_cfg import parse_cfg
    from viewfinder.detect.darknet_weights import expected_weights_size

    assert (tmp_path / "final.weights").stat().st_size == expected_weights_size(
        parse_cfg(voc / "small.cfg"))
    code, out, err = run_cli(*_args(voc, tmp_path, "--epochs", 3, "--resume",
                                    tmp_path / "last.pt", "--loss-scale", "dynamic",
                                    "--interval", 1, "--no-eval"))
    assert code == 0, err
    steps = [line for line in out.splitlines() if line.startswith("iter")]
    assert [s.split()[1] for s in steps] == ["4", "5"]  # continues after the 4 steps done


@pytest.mark.parametrize(("extra", "message"), [
    (("--loss-scale", "static:x"), "loss scale 'static:x': expected static:<number>"),
    (("--loss-scale", "huge"), "expected none, static:<number> or dynamic"),
    (("--device", "tpu"), "device 'tpu': expected cpu, cuda"),
    *([(("--device", "cuda"), "CUDA is not available")] if not torch.cuda.is_available() else []),
    (("--loss-scale", "dynamic", "--backoff", "2"), "backoff factor 2.0"),
    (("--size", "100"), "input size 100x100 must be positive multiples of 32"),
])
def test_bad_settings_exit_2_without_output(run_cli, voc, tmp_path, extra, message) -> None:
    out_dir = tmp_path / "run"
    code, out, err = run_cli(*_args(voc, out_dir, "--epochs", 1, *extra))
    assert code == 2 and message in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_missing_data_and_unknown_class(run_cli, voc, tmp_path) -> None:
    code, _, err = run_cli("train", "yolo", "--data", tmp_path / "none", "--cfg",
                           voc / "small.cfg", "--names", voc / "names.txt", "--epochs", 1)
    assert code == 2 and "VOC directory does not exist" in err
    (tmp_path / "other.txt").write_text("red\ngreen\n")
    code, _, err = run_cli("train", "yolo", "--data", voc / "VOC", "--cfg", voc / "small.cfg",
                           "--names", tmp_path / "other.txt", "--epochs", 1,
                           "--out", tmp_path / "o")
    assert code == 2 and "class 'blue' is not in the model's 2 class names" in err
