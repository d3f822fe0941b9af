"""The real service, as a process on a loopback port: results, errors, health, metrics,
back-pressure and the SIGTERM drain.

Every load loop here is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from viewfinder.structures import FACE_NAMES, Detections

httpx = pytest.importorskip("httpx")
pytestmark = [pytest.mark.xdist_group("serve"), pytest.mark.slow]


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def huge_jpeg() -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 60000, 60000, 3) + \
        b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xd9"


@pytest.fixture(scope="module")
def in_process():
    """The in-process faces task the service's answers must equal."""
    from viewfinder.tasks import build_task

    return build_task("faces", backend="ort")  # as faces_server runs


def assert_same(got: Detections, want: Detections, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} faces, expected {len(want)}"
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.01, err_msg=what)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-4, err_msg=what)
    np.testing.assert_allclose(got.keypoints, want.keypoints, atol=0.01, err_msg=what)
    np.testing.assert_allclose(got.landmarks, want.landmarks, atol=0.05, err_msg=what)


def test_sixteen_concurrent_clients_each_get_their_own_results(faces_server, in_process, shared):
    group = cv2.imread(str(shared / "images" / "group_t1.jpg"))
    # 16 different pictures: windows over the group photo, some mirrored; 0 to 6 faces each
    images = [np.ascontiguousarray(group[:, x:x + 560][:, ::-1 if k % 2 else 1])
              for k, x in enumerate(range(0, 720, 45))]
    want = [in_process.image(im) for im in images]
    assert len({(len(w), round(float(w.boxes.sum()), 1)) for w in want}) == 16
    bodies = [png(im) for im in images]
    start = threading.Barrier(16)

    def client(i: int) -> list[dict]:
        with httpx.Client(base_url=faces_server.url, timeout=60) as c:
            start.wait(timeout=30)
            return [c.post("/v1/faces", content=bodies[i]).json() for _ in range(2)]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(client, range(16), timeout=120))
    for i, records in enumerate(answers):
        for rec in records:
            assert (rec["width"], rec["height"]) == images[i].shape[1::-1]
            assert_same(Detections.from_dict(rec, FACE_NAMES), want[i], f"client {i}")
    text = httpx.get(f"{faces_server.url}/metrics").text
    size_sum = float(re.search(r'viewfinder_batch_size_sum\{task="faces"\} (\S+)', text)[1])
    count = float(re.search(r'viewfinder_batch_size_count\{task="faces"\} (\S+)', text)[1])
    assert size_sum / count > 1.0, "no two requests shared a batch"


def test_client_returns_what_the_in_process_api_returns(faces_server, in_process, shared):
    from viewfinder.client import Client
    from viewfinder.errors import ServiceError

    path = shared / "images" / "group_t1.jpg"
    image = cv2.imread(str(path))
    want = in_process.image(image)
    with Client(faces_server.url) as c:
        assert c.live()
        assert_same(c.faces(path), want, "file")
        assert_same(c.faces(image), want, "array")
        both = c.run_many("faces", [path, shared / "images" / "dog.jpg"])
        assert [len(d) for d in both] == [6, 0]
        assert c.faces(path, landmarks=False).landmarks is None
        assert len(c.faces(path, max_faces=2)) == 2
        assert c.annotate("faces", path)[:2] == b"\xff\xd8"
        with pytest.raises(ServiceError, match="not an image") as err:
            c.faces(b"not an image")
        assert err.value.status == 400


def test_readyz_reports_what_runs_each_model(faces_server):
    body = httpx.get(f"{faces_server.url}/readyz").json()
    models = body["tasks"]["faces"]["models"]
    assert [m["role"] for m in models] == ["detector", "landmarks"]
    for m in models:
        assert (m["backend"], m["provider"]) == ("ort", "CPUExecutionProvider")
        assert m["precision"] == "f32" and m["threads"] >= 1
    assert body["batching"] == {"max_batch": 8, "max_wait_ms": 2.0, "queue_size": 16}


def test_bad_requests_over_http(faces_server, shared, tmp_path, run_cli):
    url = f"{faces_server.url}/v1/faces"
    dog = (shared / "images" / "dog.jpg").read_bytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(dog[:len(dog) // 2])
    # the same one-line message as the CLI
    code, _, err = run_cli("faces", half)
    assert code == 2
    r = httpx.post(url, files=[("image", ("half.jpg", half.read_bytes()))])
    assert r.status_code == 400
    assert f"error: {r.json()['error']}" == err.strip().replace(str(half), "half.jpg")
    cases = [(huge_jpeg(), 413, "60000x60000"), (b"", 400, "empty request body"),
             (b"\x89PNG\r\n\x1a\n" + bytes(5 << 20), 413, "over the limit of 4194304 bytes"),
             (b"text", 400, "not an image")]
    for body, status, message in cases:
        r = httpx.post(url, content=body, timeout=30)
        assert (r.status_code, message in r.json()["error"]) == (status, True), r.text
    for query, message in (("score=x", "score='x'"), ("max_faces=-1", "max_faces='-1'"),
                           ("landmarks=maybe", "landmarks='maybe'")):
        r = httpx.post(f"{url}?{query}", content=dog)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    r = httpx.post(f"{faces_server.url}/v1/dpm", content=dog)
    assert r.status_code == 404 and "served: faces" in r.json()["error"]


@pytest.fixture(scope="module")
def slow_server(start_server):
    """Faces without landmarks, one image per batch, 0.4 s a batch, 2 places in the queue."""
    server = start_server("--landmarks", "none", "--backend", "ort", "--queue-size", "2",
                          "--max-batch", "1", "--batch-delay-ms", "400", ready=False)
    codes = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and 200 not in codes:
        try:
            codes.append(httpx.get(f"{server.url}/readyz", timeout=2).status_code)
        except httpx.HTTPError:
            time.sleep(0.05)
    assert codes and set(codes) <= {200, 503} and codes[-1] == 200, server.output()
    return server


def test_past_the_queue_is_503_at_once(slow_server, shared):
    dog = (shared / "images" / "dog.jpg").read_bytes()
    done: dict[int, tuple[int, float, str | None]] = {}
    start = threading.Barrier(8)

    def send(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            start.wait(timeout=30)
            r = c.post(f"{slow_server.url}/v1/faces", content=dog)
            done[i] = (r.status_code, time.monotonic(), r.headers.get("retry-after"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(8), timeout=60))
    ok = [t for code, t, _ in done.values() if code == 200]
    busy = [(t, retry) for code, t, retry in done.values() if code == 503]
    assert len(ok) >= 3 and busy, done  # one running, two queued, the rest refused
    assert all(retry == "1" for _, retry in busy)
    assert max(t for t, _ in busy) < max(ok)  # refused without waiting for the queue


def test_sigterm_drains_requests_in_flight_and_exits_0(slow_server, shared):
    server = slow_server  # the last test on it: it ends here
    dog = (shared / "images" / "dog.jpg").read_bytes()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(httpx.post, f"{server.url}/v1/faces", content=dog, timeout=30)
                   for _ in range(3)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until all three are queued or running
            text = httpx.get(f"{server.url}/metrics").text
            n = sum(int(v) for v in re.findall(
                r'viewfinder_(?:queue_depth|inflight_images)\{task="faces"\} (\d+)', text))
            if n >= 3:
                break
            time.sleep(0.02)
        pending = sum(not f.done() for f in futures)
        t0 = time.monotonic()
        server.terminate()
        codes = [f.result(timeout=30).status_code for f in futures]
    assert server.proc.wait(timeout=25) == 0, server.output()
    assert codes == [200] * 3, (codes, server.output())
    assert n >= 3 and pending >= 1, f"{n} queued or running, {pending} unanswered at SIGTERM"
    assert time.monotonic() - t0 < 20
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/livez", timeout=2)


def test_a_model_that_fails_to_load_stops_the_server_with_exit_2(start_server, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    server = start_server("--model", str(broken), "--backend", "ort", ready=False)
    assert server.proc.wait(timeout=120) == 2
    assert "error: " in server.output() and "broken.onnx" in server.output()
