"""The training loop on synthetic data: loss falls, AMP, overflow skipping, checkpoints."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from viewfinder.detect.darknet_cfg import parse_cfg_text
from viewfinder.detect.train.augment import Augment, BatchLoader, Sample
from viewfinder.errors import ConfigError, ModelError, ProviderError
from viewfinder.train import (
    AmpPolicy,
    CheckpointHook,
    DynamicLossScaler,
    LoggingHook,
    StaticLossScaler,
    Trainer,
    make_scaler,
    resolve_device,
)

torch = pytest.importorskip("torch")

from viewfinder.detect.darknet import build_darknet  # noqa: E402
from viewfinder.detect.train.loss import YoloTrainModel  # noqa: E402

CFG = "[net]\nwidth=64\nheight=64\nchannels=3\n" + "".join(
    f"[convolutional]\nbatch_normalize=1\nfilters={f}\nsize=3\nstride={s}\npad=1\n"
    "activation=leaky\n" for f, s in ((16, 2), (32, 2), (32, 2))) + (
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=8,8, 16,16, 32,32\nclasses=2\nnum=3\nignore_thresh=.7\n")


def _sample(i: int) -> Sample:
    """A grey image with one red (class 0) or blue (class 1) square."""
    r = np.random.default_rng(i)
    img = np.full((64, 64, 3), 90, np.uint8)
    x, y = (int(v) for v in r.integers(0, 40, 2))
    s, c = int(r.integers(10, 24)), i % 2
    img[y:y + s, x:x + s] = (0, 0, 255) if c == 0 else (255, 0, 0)
    return Sample(img, np.array([[x, y, x + s, y + s]], np.float32), np.array([c]))


def _trainer(max_iter: int, amp: str = "fp32", scaler=None, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = YoloTrainModel(build_darknet(parse_cfg_text(CFG)))
    loader = BatchLoader(_sample, 32, Augment(64, jitter=0, hsv=None, seed=seed), 8, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return Trainer(model, opt, loader, max_iter=max_iter, amp=AmpPolicy(amp), scaler=scaler)


def test_loss_falls_with_a_loss_scale(caplog) -> None:
    trainer = _trainer(30, scaler=make_scaler("static:1024"))
    trainer.register_hooks([LoggingHook()])
    with caplog.at_level(logging.INFO, logger="viewfinder.train.hooks"):
        history = trainer.train()
    losses = [m["loss"] for m in history]
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:3])
    assert all(m["scale"] == 1024 for m in history) and not any(m["overflow"] for m in history)
    assert {"loss_xy", "loss_wh", "loss_obj", "loss_cls"} <= set(history[0])
    assert caplog.text.count("scale 1024") == 30  # the scale is logged at every step


def test_bf16_autocast_on_cpu_trains() -> None:
    history = _trainer(4, amp="bf16", scaler=DynamicLossScaler(interval=2)).train()
    assert all(np.isfinite(m["loss"]) for m in history)
    assert [m["scale"] for m in history] == [65536.0, 65536.0, 131072.0, 131072.0]


def test_fp16_autocast_real_overflow_backs_off_then_trains() -> None:
    """No injection: fp16 gradients overflow at a too-large scale, the scaler notices,
    skips those steps and halves the scale until steps go through (on CPU)."""
    trainer = _trainer(10, amp="fp16", scaler=DynamicLossScaler(2.0 ** 16, interval=100))
    first = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.train()
    flags = [m["overflow"] for m in history]
    n = flags.index(False)
    assert n >= 1 and not any(flags[n:])  # overflows first, then clean steps
    assert [m["scale"] for m in history[:n + 1]] == [2.0 ** (16 - i) for i in range(n + 1)]
    assert trainer.scaler.state.overflows == n
    assert any(not torch.equal(a, b) for a, b in zip(first, trainer.model.parameters(),
                                                      strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_fp16_autocast_with_dynamic_scaling_on_cuda() -> None:  # pragma: no cover
    trainer = _trainer(20, amp="fp16", scaler=DynamicLossScaler())
    trainer.model.cuda()
    trainer.amp = AmpPolicy("fp16", "cuda")
    trainer.device = torch.device("cuda")
    history = trainer.train()
    assert history[-1]["loss"] < history[0]["loss"]


def test_overflowing_steps_are_skipped_in_the_loop() -> None:
    trainer = _trainer(3, scaler=StaticLossScaler(1024.0))
    real_step = trainer.scaler.step
    calls = {"n": 0}

    def poisoned(opt):  # step 1's gradients overflow
        calls["n"] += 1
        if calls["n"] == 2:
            next(trainer.model.parameters()).grad.view(-1)[0] = float("inf") * 1024
            before = [p.detach().clone() for p in trainer.model.parameters()]
            stepped = real_step(opt)
            assert all(torch.equal(a, b) for a, b in
                       zip(before, trainer.model.parameters(), strict=True))
            return stepped
        return real_step(opt)

    trainer.scaler.step = poisoned
    history = trainer.train()
    assert [m["overflow"] for m in history] == [False, True, False]
    assert trainer.scaler.state.overflows == 1 and trainer.scaler.scale == 1024.0


def test_checkpoint_and_resume_continue_exactly(tmp_path) -> None:
    full = _trainer(6, scaler=DynamicLossScaler(interval=2))
    full.train()
    first = _trainer(6, scaler=DynamicLossScaler(interval=2))
    first.max_iter = 3
    first.register_hooks([CheckpointHook(tmp_path, period=3)])
    first.train()
    assert (tmp_path / "last.pt").is_file()
    resumed = _trainer(6, scaler=DynamicLossScaler(interval=2), seed=1)
    assert resumed.resume(tmp_path / "last.pt") == 3
    assert resumed.scaler.scale == first.scaler.scale == 131072.0
    for a, b in zip(resumed.model.state_dict().values(), first.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    resumed.train()
    assert [m["iter"] for m in resumed.history] == [3, 4, 5]
    assert resumed.scaler.state.steps == full.scaler.state.steps == 6


@pytest.mark.parametrize(("content", "message"), [
    (b"not a checkpoint", "not a checkpoint of this model"),
])
def test_resume_rejects_bad_files(tmp_path, content, message) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        _trainer(2).resume(bad)


def test_resume_rejects_another_models_checkpoint(tmp_path) -> None:
    other = torch.nn.Linear(2, 2)
    t = Trainer(other, torch.optim.SGD(other.parameters(), lr=0.1), [0], max_iter=1)
    t.save_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ModelError, match="other.pt: not a checkpoint of this model"):
        _trainer(2).resume(tmp_path / "other.pt")


@pytest.mark.parametrize(("device", "error", "message"), [
    ("tpu", ConfigError, "expected cpu, cuda"),
    *([("cuda", ProviderError, "CUDA is not available")] if not torch.cuda.is_available()
      else []),
])
def test_resolve_device_errors(device, error, message) -> None:
    with pytest.raises(error, match=message):
        resolve_device(device)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_iter": 0}, "max_iter=0"),
])
def test_trainer_settings(kwargs, message) -> None:
    m = torch.nn.Linear(1, 1)
    with pytest.raises(ConfigError, match=message):
        Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1), [0], **kwargs)


def test_amp_policy_errors() -> None:
    with pytest.raises(ConfigError, match="amp 'int8'"):
        AmpPolicy("int8")
