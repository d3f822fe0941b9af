"""``viewfinder dpm train`` / ``viewfinder dpm eval``: the thin CLI over the pipeline."""

from __future__ import annotations

import pytest

from viewfinder.dpm.train.synthetic import CLASS, write_synthetic_voc

FAST = ("--small", "--latent-iters-parts", "1", "--neg-rounds", "1", "--solver-passes", "10")


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("cli") / "voc", n_train=12, n_test=6,
                               seed=3)


def test_train_then_resume_then_eval(run_cli, voc, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli("dpm", "train", "--voc", voc, "--class", CLASS, "--out", out,
                                *FAST, "-C", "0.02")
    assert code == 0, err
    assert "parts_latent" in stdout and "final.npz" in stdout
    assert (out / "final.npz").is_file() and (out / "train.log").is_file()
    code, stdout, _ = run_cli("dpm", "train", "--voc", voc, "--class", CLASS, "--out", out,
                              *FAST, "-C", "0.02")
    assert code == 0 and "resumed after stage final" in stdout
    code, stdout, err = run_cli("dpm", "eval", "--voc", voc, "--model", out)
    assert code == 0, err
    assert f"{CLASS} on test: AP " in stdout


@pytest.mark.parametrize(("args", "message"), [
    (("train", "--class", "horse", *FAST), "class 'horse' has no usable positive"),
    (("train", "--class", CLASS, "--components", "0"), "training parameter components"),
    (("eval", "--model", "{tmp}/nothing"), "no such trained model"),
    (("eval", "--model", "{tmp}"), "no final.npz"),
])
def test_bad_input_is_one_line_and_exit_2(run_cli, voc, tmp_path, args, message):
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    extra = ("--out", tmp_path / "run") if args[0] == "train" else ()
    code, _, err = run_cli("dpm", *args, "--voc", voc, *extra)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "run" / "final.npz").exists()


def test_help_lists_every_parameter_with_its_source(run_cli):
    code, out, _ = run_cli("dpm", "train", "--help")
    assert code == 0
    for flag in ("--components", "--parts", "-C", "--cache-examples", "--solver", "--neg-rounds"):
        assert flag in out
    assert "rel5" in out


def test_workers_give_the_serial_model_and_ap(run_cli, voc, tmp_path):
    """``--workers 2`` on train and eval: the same model file and the same AP line."""
    import numpy as np

    outputs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"run{workers}"
        code, _, err = run_cli("dpm", "train", "--voc", voc, "--class", CLASS, "--out", out,
                               *FAST, "-C", "0.02", "--workers", workers)
        assert code == 0, err
        code, stdout, err = run_cli("dpm", "eval", "--voc", voc, "--model", out,
                                    "--workers", workers)
        assert code == 0, err
        ap_line = next(ln for ln in stdout.splitlines() if " AP " in ln)
        with np.load(out / "final.npz") as f:
            outputs[workers] = ({k: f[k].tobytes() for k in f.files}, ap_line.split("(")[0],
                                ap_line.split(", ")[2])
    assert outputs["0"] == outputs["2"]
