"""``viewfinder convert``: exact output names, the summary, config files, one-line errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from viewfinder.errors import ConfigError
from viewfinder.runtime.convert import PreprocessSpec, load_config, preprocess_numpy
from viewfinder.runtime.session import load_session


def _tiny(path, batch=1, reshape=(1, -1)) -> str:
    """x [B,3,8,8] -> Conv -> Reshape(reshape) -> y: a batch-1 export with a pinned flatten."""
    w = np.random.default_rng(6).normal(size=(2, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Reshape", ["c", "t"], ["y"], name="flatten")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 128])],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.array(reshape, np.int64), "t")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


@pytest.mark.parametrize("out_name", ["model.om", "net.onnx", "plain", "a.b.c"])
def test_output_named_exactly_as_given(run_cli, tmp_path, out_name):
    src = _tiny(tmp_path / "src.onnx")
    code, out, err = run_cli("convert", src, "-o", tmp_path / out_name, "--input-format", "rgb")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src.onnx", out_name])
    assert f"-> {tmp_path / out_name}" in out


def test_summary_lists_io_sizes_ops_and_verification(run_cli, tmp_path):
    src = _tiny(tmp_path / "src.onnx")
    code, out, err = run_cli("convert", src, "-o", tmp_path / "o.onnx", "--input-format", "nv12",
                             "--width", 8, "--height", 8, "--mean", "127.5", "--std", "128",
                             "--batch", "dynamic")
    assert code == 0, err
    assert "x float32 [1, 3, 8, 8]  ->  x uint8 [batch, 12, 8]" in out
    assert "y float32 [1, 128]  ->  y float32 [batch, 128]" in out
    assert "size: " in out and "B ->" in out
    assert "ops added: " in out and "Clip x1" in out and "Resize x1" in out
    assert "Reshape flatten: target [1, -1] -> [0, -1]" in out
    assert "verified against NumPy preprocessing + original model: max |diff|" in out


def test_converted_file_runs_raw_decoder_output(run_cli, tmp_path):
    src = _tiny(tmp_path / "src.onnx")
    code, _, err = run_cli("convert", src, "-o", tmp_path / "o.onnx", "--input-format", "bgr",
                           "--model-channels", "rgb", "--scale", "0.0078125", "--mean", "127.5",
                           "--width", 12, "--height", 10, "--resize", "--batch", "dynamic")
    assert code == 0, err
    raw = np.random.default_rng(0).integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    spec = PreprocessSpec(input="bgr", model_channels="rgb", mean=(127.5,) * 3,
                          std=(128.0,) * 3, resize=True, width=12, height=10)
    got = load_session(tmp_path / "o.onnx").run(raw)[0]
    orig = load_session(src)
    want = np.concatenate([orig.run(preprocess_numpy(raw[k:k + 1], spec, (8, 8)))[0]
                           for k in range(3)])
    assert got.shape == (3, 128)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_config_file(run_cli, tmp_path):
    src = _tiny(tmp_path / "src.onnx")
    cfg = tmp_path / "aipp.toml"
    cfg.write_text(
        '[preprocess]\ninput = "bgr"\nmodel_channels = "rgb"\nmean = [127.5, 127.5, 127.5]\n'
        'scale = 0.0078125\n\n[shape]\nbatch = 4\n', encoding="utf-8")
    code, out, err = run_cli("convert", src, "-o", tmp_path / "o.onnx", "--config", cfg)
    assert code == 0, err
    assert "x uint8 [4, 8, 8, 3]" in out
    spec = load_config(cfg).preprocess
    assert spec.std == (128.0,) * 3 and spec.input == "bgr"
    # A flag overrides the file.
    code, out, _ = run_cli("convert", src, "-o", tmp_path / "o2.onnx", "--config", cfg,
                           "--input-format", "rgb")
    assert code == 0 and "x uint8 [4, 8, 8, 3]" in out and "rgb uint8" in out


def _write(path, content: bytes | str):
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: ["convert", _write(d / "x.onnx", b"\x00garbage"), "-o", d / "o.onnx"],
         "x.onnx: not an ONNX model"),
        (lambda d: ["convert", _write(d / "empty.onnx", b""), "-o", d / "o.onnx"],
         "empty.onnx: not an ONNX model"),
        (lambda d: ["convert", d / "missing.onnx", "-o", d / "o.onnx"],
         "missing.onnx: no such model file"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--int8", "--calib",
                    (d / "calib").mkdir() or d / "calib"], "calib: empty"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--int8"],
         "calibration set is required"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--config",
                    _write(d / "c.toml", '[preprocess]\ninput = "rgb"\nswap_rb = true\n')],
         "c.toml: unknown key 'swap_rb' in \\[preprocess\\]"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--config",
                    _write(d / "c.toml", '[aipp]\nx = 1\n')], "c.toml: unknown section \\[aipp\\]"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--config",
                    _write(d / "c.toml", 'input = = "rgb"\n')], "c.toml: not a valid TOML file"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--input-format",
                    "nv12"], "width and height are required"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--mean", "1,2"],
         "--mean '1,2': expected 3 values"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--size", "big"],
         "--size 'big'"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "no" / "o.onnx"],
         "output directory .* does not exist"),
        (lambda d: ["convert", _tiny(d / "m.onnx"), "-o", d / "o.onnx", "--fp16", "--int8"],
         "choose one precision"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_output(run_cli, tmp_path, setup, match):
    code, out, err = run_cli(*setup(tmp_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert pytest.importorskip("re").search(match, lines[0]), lines[0]
    assert not (tmp_path / "o.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.onnx")]


def test_darknet_cfg_without_exporter_is_a_clear_error(run_cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "viewfinder.detect.darknet_export", None)
    cfg = _write(tmp_path / "yolo.cfg", "[net]\nwidth=416\n")
    _write(tmp_path / "yolo.weights", b"\x00" * 16)
    code, _, err = run_cli("convert", cfg, "-o", tmp_path / "yolo.onnx")
    assert code == 2 and "yolo.cfg: Darknet export is not available" in err


def test_darknet_cfg_without_weights(run_cli, tmp_path):
    cfg = _write(tmp_path / "yolo.cfg", "[net]\nwidth=416\n")
    code, _, err = run_cli("convert", cfg, "-o", tmp_path / "yolo.onnx")
    assert code == 2 and "yolo.cfg: Darknet weights needed" in err


def test_darknet_cfg_missing_torch_names_the_extra(run_cli, tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("viewfinder.detect.darknet_export")

    def export_onnx(cfg, weights, out, **opts):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    module.export_onnx = export_onnx
    monkeypatch.setitem(sys.modules, "viewfinder.detect.darknet_export", module)
    cfg = _write(tmp_path / "yolo.cfg", "[net]\n")
    code, _, err = run_cli("convert", cfg, "--weights", _write(tmp_path / "w.bin", b"0"), "-o",
                           tmp_path / "yolo.onnx")
    assert code == 2 and "pip install 'viewfinder[train]'" in err


def test_config_precision_and_graph_sections(tmp_path):
    cfg = _write(tmp_path / "q.toml", '[precision]\ndtype = "int8"\ncalibration = "faces"\n'
                 'quant_format = "qoperator"\nper_channel = false\ncalibrate_method = '
                 '"percentile"\n\n[graph]\noptimize = true\n'
                 '\n[shape]\nsize = [192, 160]\nbatch = "dynamic"\n')
    opts = load_config(cfg)
    assert (opts.precision, opts.quant_format, opts.per_channel) == ("int8", "qoperator", False)
    assert opts.calibrate_method == "percentile"
    assert opts.calibration == tmp_path / "faces"  # relative to the config file
    assert opts.optimize and opts.size == (192, 160) and opts.batch == "dynamic"
    assert opts.preprocess is None


@pytest.mark.parametrize(("text", "match"), [
    ('[preprocess]\ninput = "rgb"\nstd = [1, 2, 3]\nscale = 2.0\n', "std or scale"),
    ("[shape]\nbatch = inf\n", r"batch inf: expected 'dynamic' or a positive int"),
    ("[shape]\nbatch = nan\n", r"batch nan: expected 'dynamic' or a positive int"),
    ("[preprocess]\nscale = 0\n", r"scale 0: expected finite non-zero numbers"),
    ("[preprocess]\nscale = [1, 0, 1]\n", r"scale \[1, 0, 1\]: expected finite non-zero"),
    ("[preprocess]\nscale = nan\n", r"scale nan: expected finite non-zero numbers"),
    ("[preprocess]\nscale = 1e400\n", r"scale inf: expected finite non-zero numbers"),
    ('[preprocess]\ninput = "rgb"\nmean = -inf\n', r"mean: expected finite numbers"),
    ('[precision]\ndtype = "int8"\ncalibration = "c"\ncalibrate_method = "kl"\n',
     "calibrate_method 'kl': expected minmax, percentile or entropy"),
])
def test_config_value_errors_name_the_file(tmp_path, text, match):
    with pytest.raises(ConfigError, match=f"bad.toml: .*{match}"):
        load_config(_write(tmp_path / "bad.toml", text))


def test_scrfd_nv12_cli(run_cli, shared, tmp_path):
    """The issue's example: SCRFD converted to take NV12 640x480, batch dynamic."""
    code, out, err = run_cli(
        "convert", shared / "models/face/scrfd_500m_bnkps.onnx", "-o", tmp_path / "scrfd.om",
        "--input-format", "nv12", "--width", 640, "--height", 480, "--model-channels", "rgb",
        "--mean", "127.5", "--std", "128", "--batch", "dynamic")
    assert code == 0, err
    assert "input.1 uint8 [?, 720, 640]" in out and "batch already dynamic" in out
    assert [p.name for p in tmp_path.iterdir()] == ["scrfd.om"]


def test_darknet_yolov3_tiny_to_bgr_input(run_cli, shared, tmp_path):
    """Issue 7: a real Darknet cfg + weights (exported by viewfinder.detect), uint8 BGR in."""
    root = shared / "models/detect/yolov3-tiny"
    code, out, err = run_cli("convert", root / "yolov3-tiny.cfg", "--weights",
                             root / "yolov3-tiny.weights", "-o", tmp_path / "yolo.om",
                             "--input-format", "bgr", "--scale", "0.00392156862745098")
    assert code == 0, err
    assert "images uint8 [1, 416, 416, 3]" in out and "verified against" in out
    assert [p.name for p in tmp_path.iterdir()] == ["yolo.om"]


@pytest.mark.parametrize(("flags", "model"), [
    (["--out", "{o}"], "scrfd_500m"),            # a zoo name is resolved like everywhere
    (["-o", "{o}"], "{shared}/models/face/scrfd_500m_bnkps.onnx"),
    (["--output", "{o}"], "scrfd_500m"),         # the old spelling still works (hidden)
    (["--out", "{o}", "--precision", "f32"], "scrfd_500m"),
    (["--out", "{o}", "--precision", "fp32"], "scrfd_500m"),  # alias of f32
    (["--model", "scrfd_500m", "--out", "{o}"], None),        # --model, as other commands
])
def test_zoo_names_out_and_precision_words(run_cli, shared, tmp_path, flags, model):
    args = [a.replace("{o}", str(tmp_path / "o.onnx")).replace("{shared}", str(shared))
            for a in ["convert", *([model] if model else []), *flags, "--input-format", "bgr",
                      "--mean", "127.5", "--std", "128"]]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "input.1 uint8 [" in out and "verified against" in out
    assert [p.name for p in tmp_path.iterdir()] == ["o.onnx"]


@pytest.mark.parametrize(("args", "match"), [
    (["scrfd_500m"], "--out FILE is required"),
    (["--out", "{tmp}/o.onnx"], "a model is required"),
    (["scrfd_500m", "--model", "yunet", "--out", "{tmp}/o.onnx"], "give one model"),
    (["scrfd_500m", "--out", "{tmp}"], "is a directory"),
    (["scrfd_500m", "--out", "{tmp}/a.onnx", "--output", "{tmp}/b.onnx"], "give one output"),
    (["scrfd_500m", "--out", "{tmp}/no/o.onnx"], "output directory .* does not exist"),
    (["scrfd_500m", "--out", "{tmp}/o.onnx", "--precision", "bf16"], "'bf16' is not one of"),
    (["scrfd500m", "--out", "{tmp}/o.onnx"], "did you mean scrfd_500m"),
])
def test_out_and_model_errors_come_first(run_cli, tmp_path, args, match):
    import re

    code, _, err = run_cli("convert", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2 and re.search(match, err), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("dtype", "want"), [("fp32", "f32"), ("f32", "f32"), ("fp16", "fp16")])
def test_config_dtype_accepts_both_spellings(tmp_path, dtype, want):
    cfg = _write(tmp_path / "p.toml", f'[precision]\ndtype = "{dtype}"\n')
    assert load_config(cfg).precision == want


def test_config_dtype_unknown(tmp_path):
    with pytest.raises(ConfigError, match="p.toml: precision 'fp64': expected one of f32, fp16"):
        load_config(_write(tmp_path / "p.toml", '[precision]\ndtype = "fp64"\n'))


@pytest.mark.slow
def test_darknet_zoo_name_brings_its_weights(run_cli, shared, tmp_path):
    code, out, err = run_cli("convert", "yolov3-tiny", "--out", tmp_path / "yolo.onnx")
    assert code == 0, err
    assert "images float32 [1, 3, 416, 416]" in out and "verified against" in out
