"""``viewfinder serve`` under load, on loopback, against the offline runner in one run.

    .venv/bin/python benchmarks/serve.py                 # all figures (about 3 minutes)
    .venv/bin/python benchmarks/serve.py --sweep         # max batch x max wait, for the defaults

An open-loop load generator (fixed arrival rates: request i is due at t0 + i / rate,
and its latency runs from when it was due, so a slow server cannot slow the load
down) over raw HTTP/1.1 keep-alive connections on asyncio (a few microseconds of
client CPU per request, so the generator takes little from the two cores it shares
with the server). Figures:

1. throughput: the service saturated (closed loop, 2 x max_batch clients) against
   :func:`viewfinder.runner.run` in this process on the same images with the same
   thread budget, interleaved (offline, service, offline, service; medians);
2. p50 / p99 latency at 80 % of the measured capacity;
3. at 2x capacity: the share rejected (503), the reject latency, the accepted p99;
4. RSS of the server over ``--rss-requests`` requests (a second server with the
   fast UltraFace detector and the landmarks on a one-face image, so that 10,000
   requests take about a minute);
5. drain: SIGTERM under load until the process exits, and its exit code.

Every loop is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import describe_host  # noqa: E402

SHARED = Path(os.environ.get("VIEWFINDER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
os.environ.setdefault("VIEWFINDER_MODELS", str(SHARED / "models"))
TIMEOUT = 30.0


def images(n: int) -> list[Path]:
    """The group photo and the first COCO test images: faces from 0 to 6 a picture."""
    coco = sorted((SHARED / "data" / "coco256-voc" / "JPEGImages").glob("*.jpg"))
    return [SHARED / "images" / "group_t1.jpg", *coco[:max(0, n - 1)]]


# ------------------------------------------------------------------ the server
class Server:
    def __init__(self, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(f"/tmp/viewfinder-bench-serve-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "viewfinder", "serve", "--port", str(self.port), *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited {self.proc.returncode}: see {self.log.name}")
            try:
                status, _ = asyncio.run(_once(self.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"))
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("server not ready after 180 s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def request_bytes(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    async def open(self, port: int) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        return self

    async def send(self, req: bytes) -> int:
        self.writer.write(req)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


async def _once(port: int, req: bytes) -> tuple[int, None]:
    conn = await Conn().open(port)
    try:
        return await asyncio.wait_for(conn.send(req), 5), None
    finally:
        conn.close()


# ------------------------------------------------------------------ load
async def closed_loop(port: int, reqs: list[bytes], clients: int, seconds: float,
                      limit: int = 100_000) -> tuple[int, float, list[int]]:
    """``clients`` connections sending back to back for ``seconds``: (done, s, codes)."""
    codes: list[int] = []
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        i = k
        try:
            conn = await Conn().open(port)
        except OSError:
            return
        try:
            while time.perf_counter() < stop and len(codes) < limit:
                codes.append(await asyncio.wait_for(conn.send(reqs[i % len(reqs)]), TIMEOUT))
                i += clients
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            return  # the server closed the connection (drain)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return len(codes), time.perf_counter() - t0, codes


async def open_loop(port: int, reqs: list[bytes], rate: float, seconds: float,
                    max_conns: int = 512) -> list[tuple[int, float]]:
    """Requests due at fixed intervals; ``(status, seconds from due to answer)`` each
    (status 0: no answer in time, or no connection left)."""
    idle: list[Conn] = []
    opened = [0]
    out: list[tuple[int, float]] = []
    loop = asyncio.get_running_loop()

    async def one(due: float, req: bytes) -> None:
        conn = idle.pop() if idle else None
        if conn is None and opened[0] >= max_conns:
            out.append((0, loop.time() - due))
            return
        try:
            if conn is None:
                opened[0] += 1
                conn = await Conn().open(port)
            status = await asyncio.wait_for(conn.send(req), TIMEOUT)
            out.append((status, loop.time() - due))
            idle.append(conn)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            out.append((0, loop.time() - due))
            opened[0] -= 1

    n = max(1, int(rate * seconds))
    t0 = loop.time() + 0.05
    tasks = []
    for i in range(n):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, reqs[i % len(reqs)])))
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT + 10)
    for conn in idle:
        conn.close()
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------ offline
def offline_rate(task, paths: list[Path], rounds: int) -> tuple[float, float]:
    """Images per second and CPU ms per image of :func:`viewfinder.runner.run`."""
    from viewfinder.media.sources import open_source
    from viewfinder.runner import run

    source = open_source([str(p) for p in paths] * rounds)
    cpu = time.process_time()
    report = run(task, source)
    return report.rate, (time.process_time() - cpu) * 1e3 / max(report.items, 1)


# ------------------------------------------------------------------ phases
def throughput(server: Server, task, paths, reqs, clients: int, seconds: float) -> float:
    off, on, off_cpu, on_cpu = [], [], [], []
    rounds = max(1, int(seconds * 20 / len(paths)))
    for _ in range(3):
        rate, cpu_ms = offline_rate(task, paths, rounds)
        off.append(rate)
        off_cpu.append(cpu_ms)
        cpu = server.cpu_seconds()
        n, s, codes = asyncio.run(closed_loop(server.port, reqs, clients, seconds))
        ok = sum(c == 200 for c in codes)
        on.append(ok / s)
        on_cpu.append((server.cpu_seconds() - cpu) * 1e3 / max(ok, 1))
    off_m, on_m = statistics.median(off), statistics.median(on)
    print(f"throughput: service {on_m:.1f} img/s (runs {', '.join(f'{v:.1f}' for v in on)}), "
          f"offline runner {off_m:.1f} img/s (runs {', '.join(f'{v:.1f}' for v in off)}): "
          f"ratio {on_m / off_m:.2f}")
    cpu_on, cpu_off = statistics.median(on_cpu), statistics.median(off_cpu)
    print(f"CPU per image: service process {cpu_on:.1f} ms, offline process {cpu_off:.1f} ms: "
          f"throughput per CPU second, ratio {cpu_off / cpu_on:.2f}")
    return on_m


def latency_at(server: Server, reqs, rate: float, seconds: float, label: str) -> None:
    out = asyncio.run(open_loop(server.port, reqs, rate, seconds))
    ok = [t * 1e3 for c, t in out if c == 200]
    busy = [t * 1e3 for c, t in out if c == 503]
    lost = sum(c not in (200, 503) for c, _ in out)
    line = (f"{label}: {rate:.1f} req/s for {seconds:.0f} s, {len(out)} requests: accepted "
            f"{len(ok)} p50 {pct(ok, 50):.0f} ms p99 {pct(ok, 99):.0f} ms")
    if busy or label.startswith("2x"):
        line += (f"; rejected {len(busy) / len(out):.0%} (503) in p50 {pct(busy, 50):.1f} ms "
                 f"p99 {pct(busy, 99):.1f} ms")
    print(line + (f"; {lost} without an answer" if lost else ""))


def rss_phase(total: int) -> None:
    face = (SHARED / "images" / "aligned_face_112.png").read_bytes()
    server = Server("--task", "faces", "--model", "ultraface", "--max-batch", "8")
    try:
        reqs = [request_bytes("/v1/faces", face)]
        warm = min(1000, total // 10)
        asyncio.run(closed_loop(server.port, reqs, 8, 120, limit=warm))
        start = server.rss_mb()
        done, t0, samples = warm, time.perf_counter(), [start]
        while done < total and time.perf_counter() - t0 < 600:
            n, _, _ = asyncio.run(closed_loop(server.port, reqs, 8, 120,
                                              limit=min(1000, total - done)))
            done += n
            samples.append(server.rss_mb())
        growth = (samples[-1] - start) / start
        print("RSS MB every 1000 requests: " + " ".join(f"{v:.0f}" for v in samples))
        print(f"RSS over {done} requests (UltraFace + 106 landmarks, one face): "
              f"{start:.1f} MB after {warm} -> {samples[-1]:.1f} MB "
              f"(growth {growth:+.1%}; max {max(samples):.1f} MB) in "
              f"{time.perf_counter() - t0:.0f} s")
    finally:
        server.stop()


def drain_phase(server: Server, reqs: list[bytes], clients: int) -> None:
    async def run() -> tuple[float, int, list[int]]:
        load = asyncio.create_task(closed_loop(server.port, reqs, clients, 3.0))
        await asyncio.sleep(1.5)
        t0 = time.perf_counter()
        server.proc.send_signal(signal.SIGTERM)
        while server.proc.poll() is None and time.perf_counter() - t0 < 30:
            await asyncio.sleep(0.01)
        took = time.perf_counter() - t0
        _, _, codes = await load
        return took, server.proc.wait(), codes

    took, code, codes = asyncio.run(run())
    print(f"drain: SIGTERM with {clients} clients sending -> exit {code} after {took:.2f} s; "
          f"{codes.count(200)} answered 200 in all, {sum(c != 200 for c in codes)} other")


def sweep(task_args: list[str], paths, reqs, seconds: float) -> None:
    print("sweep: max batch x max wait -> saturated throughput, p50/p99 at 80 %")
    for batch, wait in ((1, 0), (4, 2), (8, 0), (8, 2), (8, 5), (16, 2)):
        server = Server(*task_args, "--max-batch", str(batch), "--max-wait-ms", str(wait))
        try:
            n, s, codes = asyncio.run(closed_loop(server.port, reqs, 2 * batch, seconds))
            cap = sum(c == 200 for c in codes) / s
            out = asyncio.run(open_loop(server.port, reqs, 0.8 * cap, seconds))
            ok = [t * 1e3 for c, t in out if c == 200]
            print(f"  batch {batch:2d} wait {wait} ms: {cap:5.1f} img/s; at 80 %: "
                  f"p50 {pct(ok, 50):4.0f} ms p99 {pct(ok, 99):4.0f} ms")
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=24, help="pictures in the set")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per load phase")
    ap.add_argument("--rss-requests", type=int, default=10_000)
    ap.add_argument("--sweep", action="store_true", help="only the batching sweep")
    ap.add_argument("--rss-only", action="store_true", help="only the RSS figure")
    args = ap.parse_args()
    print(describe_host(["numpy", "onnxruntime", "openvino", "fastapi", "uvicorn", "httpx"]))
    print(f"load avg at start: {os.getloadavg()[0]:.1f}")
    paths = images(args.images)
    reqs = [request_bytes("/v1/faces", p.read_bytes()) for p in paths]
    task_args = ["--task", "faces"]
    if args.sweep:
        sweep(task_args, paths, reqs, args.seconds)
        return
    if args.rss_only:
        rss_phase(args.rss_requests)
        return
    from viewfinder.tasks import build_task

    server = Server(*task_args)
    task = build_task("faces")  # after the server: the backend trials are shared (cached)
    offline_rate(task, paths, 1)  # warm
    asyncio.run(closed_loop(server.port, reqs, 16, 2.0))
    print(f"images: {len(paths)} (group_t1.jpg + COCO test pictures), faces, default batching "
          f"(max batch 8, max wait 2 ms, queue 16)")
    cap = throughput(server, task, paths, reqs, 16, args.seconds)
    del task
    latency_at(server, reqs, 0.8 * cap, args.seconds, "80% of capacity")
    latency_at(server, reqs, 2.0 * cap, args.seconds, "2x capacity")
    drain_phase(server, reqs, 16)
    if args.rss_requests:
        rss_phase(args.rss_requests)
    print(f"load avg at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
