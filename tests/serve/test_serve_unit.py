"""The service without models: batcher, metrics, and the app through httpx's ASGI transport.

A fake task stands in for the models: its result encodes the image it saw (mean
brightness as the score, the size as the box), so a mix-up between requests shows.
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from viewfinder.errors import ConfigError, ShapeError
from viewfinder.serve.batcher import Batcher, QueueFullError
from viewfinder.serve.config import ServeConfig
from viewfinder.serve.metrics import Metrics
from viewfinder.structures import Detections

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


class FakeDetect:
    """A 'detect' task: one box over the image, score = mean / 255."""

    name = "detect"

    def __init__(self) -> None:
        self.detector = SimpleNamespace(
            conf=0.25, names=("bright", "dark"),
            session=SimpleNamespace(path="/m/fake.onnx", backend="fake", device="CPU",
                                    precision="f32", threads=1, choice_reason=""))
        self.seen: list[float] = []

    def image(self, image: np.ndarray) -> Detections:
        if image.shape[0] == 7:
            raise ShapeError("image: 7 rows are refused by this fake")
        if image.shape[0] == 9:
            raise RuntimeError("a bug\nwith a second line")
        mean = float(image.mean())
        self.seen.append(self.detector.conf)
        h, w = image.shape[:2]
        return Detections([[0, 0, w, h]], [mean / 255], [0 if mean > 127 else 1],
                          self.detector.names)


def png(value: int, h: int = 20, w: int = 30) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), value, np.uint8))[1].tobytes()


def huge_jpeg(w: int = 60000, h: int = 60000) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xd9"


# ---------------------------------------------------------------------- batcher
def _collect(max_batch: int, max_wait_ms: float, n: int, block: threading.Event | None = None):
    sizes: list[int] = []

    def fn(images, options):
        if block is not None:
            block.wait(5)
        sizes.append(len(images))
        return [int(im[0, 0]) for im in images]

    b = Batcher("t", fn, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=64)
    return b, sizes


@pytest.mark.parametrize(("max_batch", "n", "expected"), [(4, 10, [1, 4, 4, 1]),
                                                          (8, 5, [1, 4]), (1, 3, [1, 1, 1])])
def test_batcher_groups_queued_jobs_up_to_max_batch(max_batch, n, expected) -> None:
    gate = threading.Event()
    b, sizes = _collect(max_batch, 0, n, gate)
    b.start()
    first = b.submit([np.full((2, 2), 0, np.uint8)], {})  # the worker blocks on it
    time.sleep(0.05)
    rest = [b.submit([np.full((2, 2), i, np.uint8)], {})[0] for i in range(1, n)]
    gate.set()
    assert [f.result(5) for f in first + rest] == list(range(n))  # each job its own result
    b.stop()
    assert sizes == expected


def test_batcher_waits_for_more_jobs_until_max_wait() -> None:
    b, sizes = _collect(3, 2000, 3)
    b.start()
    futures = []
    for i in range(3):  # arrive one by one, well inside the wait
        futures += b.submit([np.full((2, 2), i, np.uint8)], {})
        time.sleep(0.02)
    assert [f.result(5) for f in futures] == [0, 1, 2]
    b.stop()
    assert sizes == [3]


def test_batcher_refuses_past_the_queue_at_once() -> None:
    gate = threading.Event()
    b, _ = _collect(1, 0, 0, gate)
    b.queue_size = 2
    b.start()
    b.submit([np.zeros((2, 2), np.uint8)], {})
    time.sleep(0.05)  # taken by the worker: not in the queue any more
    b.submit([np.zeros((2, 2), np.uint8)] * 2, {})
    assert b.room() == 0
    t0 = time.perf_counter()
    with pytest.raises(QueueFullError, match="queue full"):
        b.submit([np.zeros((2, 2), np.uint8)], {})
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(QueueFullError):  # all or none: nothing of it queued
        b.submit([np.zeros((2, 2), np.uint8)] * 3, {})
    assert b.depth == 2
    gate.set()
    b.stop()


def test_a_bad_image_fails_only_its_own_job() -> None:
    task = FakeDetect()
    from viewfinder.serve.models import batch_function

    b = Batcher("detect", batch_function(task), max_batch=8, max_wait_ms=50, queue_size=8)
    b.start()
    good = b.submit([np.full((4, 4, 3), 200, np.uint8)], {})
    bad = b.submit([np.zeros((7, 4, 3), np.uint8)], {})
    assert len(good[0].result(5)) == 1
    with pytest.raises(ShapeError, match="7 rows"):
        bad[0].result(5)
    b.stop()


def test_stop_finishes_queued_jobs_then_refuses() -> None:
    b, sizes = _collect(2, 0, 0)
    futures = b.submit([np.full((2, 2), i, np.uint8) for i in range(5)], {})
    b.start()
    b.stop(timeout=5)
    assert [f.result(1) for f in futures] == [0, 1, 2, 3, 4]
    with pytest.raises(QueueFullError):
        b.submit([np.zeros((2, 2), np.uint8)], {})


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"queue_size": 0}, {"max_wait_ms": -1}])
def test_batcher_settings_are_checked(kwargs) -> None:
    with pytest.raises(ConfigError, match="batcher"):
        Batcher("t", lambda i, o: i, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"tasks": ()}, "at least one task"), ({"max_batch": 0}, "max_batch"),
    ({"max_pixels": 0}, "max_pixels"), ({"queue_size": 0}, "queue_size")])
def test_serve_config_is_checked(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        ServeConfig(**kwargs)


# ---------------------------------------------------------------------- metrics
_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+inf]+$')


def test_metrics_are_valid_prometheus_text() -> None:
    m = Metrics(lambda: {"faces": (3, 2)})
    m.ready = True
    for code, s in ((200, 0.03), (200, 0.2), (503, None), (400, None)):
        m.request("faces", code, s)
    m.reject("faces", "queue_full")
    m.batch("faces", 5, 0.04)
    text = m.render()
    for line in text.splitlines():
        assert line.startswith("# ") or _LINE.match(line), line
    assert 'viewfinder_requests_total{task="faces",code="503"} 1' in text
    assert 'viewfinder_request_seconds_bucket{task="faces",le="0.05"} 1' in text
    assert 'viewfinder_request_seconds_count{task="faces"} 2' in text
    assert 'viewfinder_batch_size_bucket{task="faces",le="4"} 0' in text
    assert 'viewfinder_batch_size_bucket{task="faces",le="8"} 1' in text
    assert 'viewfinder_queue_depth{task="faces"} 3' in text
    assert 'viewfinder_rejections_total{task="faces",reason="queue_full"} 1' in text


# ---------------------------------------------------------------------- the app
def _app(**config):
    from viewfinder.serve.app import create_app
    from viewfinder.serve.service import Service
    from viewfinder.tasks import TaskSpec

    task = FakeDetect()
    service = Service(ServeConfig((TaskSpec("detect"),), **config), tasks={"detect": task})
    return create_app(service=service), service, task


async def _post_all(app, requests):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await asyncio.gather(*(c.request(m, p, **kw) for m, p, kw in requests))


def _call(app, method, path, **kw):
    return asyncio.run(_post_all(app, [(method, path, kw)]))[0]


BAD_REQUESTS = [
    ("empty body", "/v1/detect", {"content": b""}, 400, "empty request body"),
    ("not an image", "/v1/detect", {"content": b"hello"}, 400, "not an image"),
    ("truncated PNG", "/v1/detect", {"content": png(10)[:40]}, 400, "image:"),
    ("60000x60000 header", "/v1/detect", {"content": huge_jpeg()}, 413,
     "60000x60000 = 3600000000 pixels"),
    ("over the pixel cap", "/v1/detect", {"content": png(10, 50, 50)}, 413, "2500 pixels"),
    ("body over the cap", "/v1/detect", {"content": b"\xff\xd8" + bytes(5000)}, 413,
     "request body of 5002 bytes is over the limit of 4096"),
    ("unknown task", "/v1/cats", {"content": png(1)}, 404, "task 'cats' is not served"),
    ("task not served", "/v1/faces", {"content": png(1)}, 404, "served: detect"),
    ("score not a number", "/v1/detect?score=high", {"content": png(1)}, 400, "score='high'"),
    ("score over 1", "/v1/detect?score=1.5", {"content": png(1)}, 400, "less than or equal"),
    ("draw not a flag", "/v1/detect?draw=maybe", {"content": png(1)}, 400, "draw='maybe'"),
    ("unknown option", "/v1/detect?max_faces=2", {"content": png(1)}, 400,
     "unknown option 'max_faces' for detect"),
    ("form without files", "/v1/detect", {
        "content": b'--xx\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--xx--\r\n',
        "headers": {"content-type": "multipart/form-data; boundary=xx"}}, 400,
     "at least one file"),
    ("broken form", "/v1/detect", {"content": b"--xx\r\nnonsense",
                                   "headers": {"content-type": "multipart/form-data"}}, 400,
     "multipart body"),
    ("draw with two images", "/v1/detect?draw=true",
     {"files": [("image", png(1)), ("image", png(2))]}, 400, "expected one image, got 2"),
    ("more images than the queue", "/v1/detect",
     {"files": [("image", png(1, 4, 4))] * 17}, 413, "17 images in one request; at most 16"),
    ("refused by the task", "/v1/detect", {"content": png(1, 7, 4)}, 400, "7 rows"),
    ("a bug in the task", "/v1/detect", {"content": png(1, 9, 4)}, 500,
     "internal error (RuntimeError); see the server log"),
]


@pytest.mark.parametrize(("what", "path", "kwargs", "status", "message"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_one_line_errors(what, path, kwargs, status, message) -> None:
    app, service, _ = _app(max_body=4096, max_pixels=2000)
    service.start(background=False)
    try:
        r = _call(app, "POST", path, **kwargs)
    finally:
        service.stop()
    assert r.status_code == status, r.text
    body = r.json()
    assert message in body["error"]
    assert "\n" not in body["error"] and "Traceback" not in r.text


def test_results_options_and_records() -> None:
    app, service, task = _app()
    service.start(background=False)
    try:
        one, many, drawn = asyncio.run(_post_all(app, [
            ("POST", "/v1/detect?score=0.6", {"content": png(200)}),
            ("POST", "/v1/detect", {"files": [("image", ("a.png", png(10))),
                                              ("image", ("b.png", png(250, 8, 9)))]}),
            ("POST", "/v1/detect?draw=true", {"content": png(100)})]))
    finally:
        service.stop()
    rec = one.json()
    assert (rec["source"], rec["path"], rec["width"], rec["height"]) == ("http", None, 30, 20)
    assert rec["detections"][0]["label"] == "bright"
    assert 0.6 in task.seen and task.detector.conf == 0.25  # per request, then restored
    recs = many.json()["records"]
    assert [(r["path"], r["image_id"], r["detections"][0]["label"]) for r in recs] == [
        ("a.png", "a", "dark"), ("b.png", "b", "bright")]
    assert recs[1]["detections"][0]["box"] == [0.0, 0.0, 9.0, 8.0]
    assert drawn.headers["content-type"] == "image/jpeg" and drawn.content[:2] == b"\xff\xd8"


def test_not_ready_is_503_with_retry_after() -> None:
    app, service, _ = _app()
    live, ready, post = asyncio.run(_post_all(app, [
        ("GET", "/livez", {}), ("GET", "/readyz", {}),
        ("POST", "/v1/detect", {"content": png(1)})]))
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.json()["status"] == "loading"
    assert post.status_code == 503 and post.headers["retry-after"] == "1"
    service.start(background=False)
    ready = _call(app, "GET", "/readyz")
    service.stop()
    assert ready.status_code == 200
    model = ready.json()["tasks"]["detect"]["models"][0]
    assert (model["backend"], model["provider"], model["threads"]) == ("fake", "CPU", 1)


def test_past_the_queue_answers_503_without_waiting() -> None:
    app, service, _ = _app(queue_size=1, max_batch=1, batch_delay_ms=300)
    service.start(background=False)
    try:
        answers = asyncio.run(_post_all(app, [("POST", "/v1/detect", {"content": png(i)})
                                              for i in range(6)]))
    finally:
        service.stop()
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2 and 503 in codes, codes
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and "queue full" in r.json()["error"]
    text = service.metrics.render()
    assert 'reason="queue_full"' in text


# ---------------------------------------------------------------------- the command
@pytest.mark.parametrize(("args", "message"), [
    (["--task", "faces", "--task", "detect", "--model", "yolov3-tiny"], "TASK=MODEL"),
    (["--task", "faces", "--model", "dpm=VOC2007_person"], "task 'dpm' is not served"),
    (["--task", "cats"], "'cats' is not one of"),
    (["--max-batch", "0"], "--max-batch"),
])
def test_serve_command_refuses_bad_arguments(run_cli, args, message) -> None:
    code, _, err = run_cli("serve", *args)
    assert code == 2 and message in err


def test_help_does_not_import_the_web_stack() -> None:
    import subprocess
    import sys

    code = ("import sys; from viewfinder.cli import main; main(['--help']); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'httpx', 'starlette') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert "serve" in out and out.strip().endswith("[]")
