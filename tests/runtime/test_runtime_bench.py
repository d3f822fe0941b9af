"""``viewfinder bench`` and its library: inputs, outputs, stats, compare, backend table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from viewfinder.errors import ConfigError
from viewfinder.runtime.bench import compare_outputs, run_bench, summarize
from viewfinder.runtime.session import load_session


@pytest.mark.parametrize(("times", "batch", "expect"), [
    ([0.001] * 4, 1, {"min": 1.0, "p50": 1.0, "max": 1.0, "throughput": 1000.0}),
    ([0.001, 0.002, 0.003, 0.004], 2, {"min": 1.0, "mean": 2.5, "p50": 2.5, "max": 4.0,
                                       "throughput": 800.0}),
    ([0.010] * 99 + [1.0], 1, {"p50": 10.0, "p90": 10.0, "max": 1000.0}),
])
def test_summarize(times: list[float], batch: int, expect: dict[str, float]) -> None:
    stats = summarize(times, batch).as_dict()
    for key, value in expect.items():
        assert stats[key] == pytest.approx(value), key
    assert stats["runs"] == len(times)


def test_summarize_needs_runs() -> None:
    with pytest.raises(ConfigError, match="no timed runs"):
        summarize([])


def test_run_bench_times_every_call_and_keeps_first_outputs(tiny_model) -> None:
    sess = load_session(tiny_model())
    samples = [("a", {"x": np.ones((1, 3, 2, 2), np.float32)}),
               ("b", {"x": np.zeros((1, 3, 2, 2), np.float32)})]
    res = run_bench(sess, samples, loop=3, warmup=1)
    assert res.times.shape == (6,) and (res.times > 0).all()
    assert [n for n, _ in res.outputs] == ["a", "b"]
    np.testing.assert_array_equal(res.outputs[0][1][0], np.full((1, 3, 2, 2), 3.0))


@pytest.mark.parametrize(("a", "b", "match"), [
    ([np.zeros(3)], [], "differ in number"),
    ([np.zeros(3)], [np.zeros(4)], "shapes differ"),
])
def test_compare_outputs_rejects_incomparable(a, b, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        compare_outputs(a, b, ["y"])


def test_compare_outputs_deltas() -> None:
    (d,) = compare_outputs([np.array([1.0, 2.0, 3.0])], [np.array([1.0, 2.5, 2.0])], ["y"])
    assert (d.max_abs, d.mean_abs) == pytest.approx((1.0, 0.5))


@pytest.mark.parametrize(("extra", "backend"), [
    ([], "[auto: "),  # --backend defaults to auto, which says what it picked
    (["--backend", "ort"], "ort on CPUExecutionProvider"),
])
def test_bench_zeros_prints_latency_stats(shared: Path, run_cli, extra: list[str],
                                          backend: str) -> None:
    if not extra:
        pytest.importorskip("openvino")
    code, out, err = run_cli("bench", "--model", "2d106det", "--loop", "3", "--warmup", "1",
                             *extra)
    assert code == 0, err
    for part in (backend, "p50 ms", "p99 ms", "samples/s", "3 calls"):
        assert part in out


@pytest.mark.parametrize("fmt", ["npy", "bin", "txt"])
def test_outputs_one_file_per_tensor_per_input(tiny_model, tmp_path: Path, run_cli,
                                               fmt: str) -> None:
    model = tiny_model(shape=(1, 3, 2, 2))
    inputs = []
    for k in range(2):
        arr = np.full((1, 3, 2, 2), k, np.float32)
        np.save(tmp_path / f"in{k}.npy", arr)
        inputs += ["--input", tmp_path / f"in{k}.npy"]
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli("bench", "--model", model, *inputs, "--loop", "2", "--out", out,
                           "--outfmt", fmt)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f"in{k}_output_{i}.{fmt}" for k in range(2) for i in range(2)]
    y1 = out / f"in1_output_0.{fmt}"
    got = {"npy": lambda: np.load(y1), "bin": lambda: np.fromfile(y1, np.float32),
           "txt": lambda: np.loadtxt(y1)}[fmt]()
    np.testing.assert_allclose(np.ravel(got), np.full(12, 3.0))


def test_bin_input_is_shaped_by_the_model(tiny_model, tmp_path: Path, run_cli) -> None:
    model = tiny_model(shape=(1, 3, 2, 2))
    np.arange(12, dtype=np.float32).tofile(tmp_path / "x.bin")
    out = tmp_path / "o"
    out.mkdir()
    code, _, err = run_cli("bench", "--model", model, "--input", tmp_path / "x.bin", "--loop",
                           "1", "--out", out, "--outfmt", "npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(out / "x_output_0.npy").ravel(), np.arange(12) * 2 + 1)


def test_image_goes_through_the_declared_preprocessing(shared: Path, tmp_path: Path,
                                                       run_cli) -> None:
    from viewfinder.media.image import read_image
    from viewfinder.runtime import zoo
    from viewfinder.runtime.preprocess import image_to_tensor

    img = shared / "images/dog.jpg"
    code, _, err = run_cli("bench", "--model", "ultraface", "--input", img, "--loop", "1",
                           "--backend", "ort", "--out", tmp_path, "--outfmt", "npy")
    assert code == 0, err
    x = image_to_tensor(read_image(img), zoo.get_model("ultraface").input)
    want = load_session(zoo.resolve("ultraface")).run(x)
    np.testing.assert_array_equal(np.load(tmp_path / "dog_output_0.npy"), want[0])


def test_json_and_csv_hold_every_call(tiny_model, tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("bench", "--model", tiny_model(shape=(1, 3, 4, 4)), "--loop", "7",
                           "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert len(doc["times_ms"]) == 7 and doc["stats"]["runs"] == 7 and "avx" in doc["cpu_flags"]
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 8


def test_batch_fills_a_dynamic_batch(tiny_model, tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli("bench", "--model", tiny_model(shape=("N", 3, 4, 4)), "--batch",
                             "4", "--loop", "2", "--json", tmp_path / "r.json")
    assert code == 0, err
    stats = json.loads((tmp_path / "r.json").read_text())["stats"]
    assert stats["throughput"] == pytest.approx(4 * 1e3 / stats["mean"], rel=1e-6)


def test_compare_runs_two_models_and_prints_deltas(shared: Path, run_cli) -> None:
    code, out, err = run_cli("bench", "--model", "scrfd_500m_fixed640", "--compare",
                             "scrfd_500m", "--loop", "2", "--random")
    assert code == 0, err
    assert "ratio B/A (p50)" in out and out.count("max abs") == 9


def test_backends_all_prints_the_table(shared: Path, run_cli, has_openvino) -> None:
    code, out, err = run_cli("bench", "--model", "2d106det", "--backends", "all", "--loop", "2")
    assert code == 0, err
    assert "cpu flags" in out and "onnxruntime" not in err
    rows = {tuple(line.split()[:2]) for line in out.splitlines() if line.strip()}
    assert ("ort", "f32") in rows and ("openvino", "f32") in rows


@pytest.mark.parametrize(("extra", "match"), [
    (["--input", "{tmp}/short.bin"], "12 bytes, expected 48"),
    (["--input", "{tmp}/empty"], "no .npy, .bin or image files"),
    (["--input", "{tmp}/missing.npy"], "no such input file"),
    (["--input", "{tmp}/wrong.npy"], r"shape \(5,\), expected \(1, 3, 2, 2\)"),
    (["--input", "{tmp}/img.jpg"], "image inputs need a zoo model"),
    (["--batch", "2"], "fixed batch of 1"),
    (["--loop", "0"], "--loop 0"),
    (["--provider", "cuda"], "not available"),
    (["--shape", "1,3,x"], "comma-separated ints"),
    (["--backends", "tvm"], "unknown backend 'tvm'"),
])
def test_bad_input_is_one_line_exit_2_and_no_outputs(tiny_model, tmp_path: Path, run_cli,
                                                    extra: list[str], match: str) -> None:
    model = tiny_model(shape=(1, 3, 2, 2))
    np.zeros(3, np.float32).tofile(tmp_path / "short.bin")
    np.save(tmp_path / "wrong.npy", np.zeros(5, np.float32))
    (tmp_path / "empty").mkdir()
    (tmp_path / "img.jpg").write_bytes(b"\xff\xd8")
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, _, err = run_cli("bench", "--model", model, *args, "--out", out)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and pytest.importorskip("re").search(match, err), err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("model_arg", "match"), [
    ("{tmp}/junk.onnx", "not an ONNX model"),
    ("{tmp}/nope.onnx", "no such model file"),
    ("scrfd500m", "did you mean scrfd_500m"),
    ("{dyn}", r"dynamic dims .*--shape"),
])
def test_bad_models_are_one_line_exit_2(tiny_model, tmp_path: Path, run_cli, model_arg: str,
                                        match: str) -> None:
    import re

    (tmp_path / "junk.onnx").write_bytes(b"garbage")
    arg = model_arg.replace("{tmp}", str(tmp_path)).replace("{dyn}", str(tiny_model()))
    code, _, err = run_cli("bench", "--model", arg, "--loop", "1")
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err


def test_backends_table_times_a_converted_variant(int8_model, run_cli) -> None:
    f32, q = int8_model
    code, out, err = run_cli("bench", "--model", f32, "--backends", "ort", "--variant",
                             f"int8={q}", "--loop", "3", "--shape", "1,3,8,8", "--random")
    assert code == 0, err
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines() if line.strip()}
    assert rows[("ort", "int8")][2] != "n/a" and rows[("ort", "fp16")][2] == "n/a"
    assert float(rows[("ort", "int8")][6]) > 0  # max |d| against f32: quantization error


def test_npy_gives_the_shape_of_a_dynamic_model(tiny_model, tmp_path: Path, run_cli) -> None:
    np.save(tmp_path / "a.npy", np.ones((3, 5, 7), np.float32))  # no batch dim
    code, out, err = run_cli("bench", "--model", tiny_model(), "--input", tmp_path / "a.npy",
                             "--loop", "1", "--out", tmp_path, "--outfmt", "npy")
    assert code == 0, err
    assert np.load(tmp_path / "a_output_0.npy").shape == (1, 3, 5, 7)


def test_compare_against_f32_onnx_runtime(shared: Path, run_cli, has_openvino) -> None:
    code, out, err = run_cli("bench", "--model", "2d106det", "--backend", "openvino",
                             "--compare", "ort:f32", "--loop", "2", "--random")
    assert code == 0, err
    assert "A: openvino on CPU" in out and "B: ort on CPUExecutionProvider" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("output 0 fc1"))
    assert 0 < float(line.split("max abs ")[1].split(",")[0]) < 2e-6


def test_batch_stacks_input_files_and_pads_the_last(tiny_model, tmp_path: Path, run_cli) -> None:
    for k in range(3):
        np.save(tmp_path / f"in{k}.npy", np.full((1, 3, 2, 2), k, np.float32))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli("bench", "--model", tiny_model(), "--input", tmp_path, "--batch", "2",
                           "--loop", "1", "--out", out, "--outfmt", "npy")
    assert code == 0, err
    first, last = np.load(out / "in0_output_0.npy"), np.load(out / "in2_output_0.npy")
    assert first.shape == last.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(first[:, 0, 0, 0], [1.0, 3.0])  # y = 2x + 1 for x = 0, 1
    np.testing.assert_array_equal(last[:, 0, 0, 0], [5.0, 5.0])   # in2, padded with itself


def test_bench_auto_says_what_it_picked_and_why(tiny_model, run_cli, has_openvino,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli("bench", "--model", tiny_model(), "--backend", "auto",
                             "--shape", "1,3,8,8", "--loop", "2")
    assert code == 0, err
    (line,) = [ln for ln in out.splitlines() if "[auto: " in ln]
    assert "1x3x8x8" in line and " ms vs " in line


@pytest.mark.parametrize(("extra", "match"), [
    (["--out", "{tmp}/missing_dir/x.json"], "--out's parent directory .*missing_dir does not"),
    (["--out", "{tmp}/file.txt"], "'--out'.* is a file"),  # click's usage error
    (["--output", "{tmp}/missing_dir/x"], "--out's parent directory"),  # the old spelling
    (["--json", "{tmp}/missing_dir/x.json"], "--json's directory .*missing_dir does not exist"),
    (["--csv", "{tmp}/missing_dir/x.csv"], "--csv's directory"),
    (["--json", "{tmp}"], "'--json'.* is a directory"),
    (["--out", "{tmp}/a", "--output", "{tmp}/b"], "give one directory"),
    (["--backends", "ort", "--json", "{tmp}/missing_dir/x.json"], "--json's directory"),
])
def test_output_locations_fail_before_any_loop(tiny_model, tmp_path: Path, run_cli,
                                               monkeypatch: pytest.MonkeyPatch,
                                               extra: list[str], match: str) -> None:
    import re

    from viewfinder.runtime import bench, session

    def never(*a, **k):
        raise AssertionError("ran before the outputs were checked")

    for name in ("run_bench", "run_interleaved", "backend_matrix"):
        monkeypatch.setattr(bench, name, never)
    monkeypatch.setattr(session, "load_session", never)
    (tmp_path / "file.txt").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, out, err = run_cli("bench", "--model", tiny_model(shape=(1, 3, 2, 2)), *args)
    assert code == 2 and re.search(match, err), err
    assert err.count("\n") == 1 or err.startswith("Usage: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "tiny.onnx"]


def test_out_directory_is_created_after_the_runs(tiny_model, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "new"
    code, _, err = run_cli("bench", "--model", tiny_model(shape=(1, 3, 2, 2)), "--loop", "1",
                           "--backend", "ort", "--out", out, "--outfmt", "npy")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["zeros_output_0.npy", "zeros_output_1.npy"]


@pytest.mark.parametrize("precision", ["f32", "fp32", "FP32"])
def test_precision_words(tiny_model, run_cli, precision: str) -> None:
    code, out, err = run_cli("bench", "--model", tiny_model(shape=(1, 3, 2, 2)), "--loop", "1",
                             "--backend", "ort", "--precision", precision,
                             "--compare", f"ort:{precision}")
    assert code == 0, err
    assert "A: ort on CPUExecutionProvider (f32" in out and "ratio B/A" in out


def test_precision_unknown(tiny_model, run_cli) -> None:
    code, _, err = run_cli("bench", "--model", tiny_model(shape=(1, 3, 2, 2)), "--precision",
                           "fp64")
    assert code == 2 and "'fp64' is not one of 'f32', 'bf16', 'fp16', 'int8'" in err
