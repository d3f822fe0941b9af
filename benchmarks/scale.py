"""Scale-out on this host: serial vs the process pool vs Ray, same task, same inputs.

    .venv/bin/python benchmarks/scale.py [--images 1000] [--videos 10] [--frames 25]
        [--task detect|faces] [--workers 2] [--rounds 1] [--no-ray]

Inputs: ``--images`` stills (coco256-voc's JPEGImages repeated) and ``--videos``
short videos (the shared clips, each cut to ``--frames`` by ``max_frames``), as one
list file. Each round runs serial, pool and Ray in turn (interleaved, so load on a
shared host hits all three alike); the medians are printed with the speed-up over
serial, Ray's start-up (``ray.init``) and actor warm-up (start of the dataset to its
first result), the threads each worker read back from its sessions, and whether the
three JSON-lines files are byte-identical. Then the per-image costs of one worker
(1 thread): read (file bytes), decode, infer, write (record + JSON line): the
figures docs/scale.md extrapolates from.

Last, DPM training's mining stage (``--no-dpm`` skips it): ``viewfinder dpm train``
at the defaults on coco256-voc person, stopped after ``root_init`` and after
``parts_init``; with each model, one mining pass over the negative images (every
window above -1.002) and one relabelling pass over the positive images, serial, on
the pool and on Ray, with the workers started beforehand (their start-up printed
apart), and whether the three engines found the same windows and features.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import describe_host  # noqa: E402


def _inputs(shared: Path, images: int, videos: int, folder: Path) -> Path:
    stills = sorted((shared / "data" / "coco256-voc" / "JPEGImages").glob("*.jpg"))
    clips = sorted(p for p in (shared / "video").iterdir() if p.suffix in (".mp4", ".h264"))
    lines = [str(stills[i % len(stills)]) for i in range(images)]
    lines += [str(clips[i % len(clips)]) for i in range(videos)]  # repeats never adjacent
    listing = folder / "inputs.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return listing


def _spec(task: str):
    from viewfinder.tasks import TaskSpec

    if task == "faces":
        return TaskSpec("faces", None, {"backend": "ort"})
    return TaskSpec("detect", "yolov3-tiny", {"backend": "ort"})


class _First:
    """A progress callback that remembers when the first result came."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.first is None and done:
            self.first = time.perf_counter()


def _serial(spec, source, json_path: Path) -> dict:
    from viewfinder.runner import run
    from viewfinder.sinks import open_sinks

    t0 = time.perf_counter()
    task = spec.build()
    load = time.perf_counter() - t0
    report = run(task, source, open_sinks(source, None, json_path))
    return {"wall": time.perf_counter() - t0, "startup": load, "warmup": 0.0,
            "items": report.items, "threads": None}


def _pool(spec, source, json_path: Path, workers: int) -> dict:
    from viewfinder.scale import run_pool

    first = _First()
    t0 = time.perf_counter()
    report = run_pool(spec, source, workers=workers, json_path=json_path, progress=first)
    return {"wall": time.perf_counter() - t0, "startup": report.startup,
            "warmup": (first.first or t0) - t0 - report.startup, "items": report.items,
            "threads": report.worker_threads}


def _ray(spec, source, json_path: Path, workers: int) -> dict:
    from viewfinder.scale.ray_engine import run_ray

    first = _First()
    t0 = time.perf_counter()
    report = run_ray(spec, source, workers=workers, threads=1, json_path=str(json_path),
                     progress=first)
    return {"wall": time.perf_counter() - t0, "startup": report.startup,
            "warmup": (first.first or t0) - t0 - report.startup, "items": report.items,
            "threads": report.worker_threads}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _threads(reports: list[dict] | None) -> str:
    if not reports:
        return "-"
    parts = []
    for w in reports:
        ort = [(s.get("intra_op"), s.get("inter_op")) for s in w["sessions"]]
        parts.append(f"cv2 {w['cv2']}, numba {w['numba']}, ort intra/inter {ort}, blas "
                     f"{sorted({b['num_threads'] for b in w['blas']})}")
    return "; ".join(sorted(set(parts)))


def _costs(spec, listing: Path, n: int = 48) -> dict[str, float]:
    """Per-image milliseconds of one 1-thread worker: read, decode, infer, write."""
    import json

    from viewfinder.media.image import decode_image
    from viewfinder.media.sources import Origin
    from viewfinder.scale.threads import pin_threads
    from viewfinder.sinks import make_record

    pin_threads(1)
    task = spec.with_options(threads=1).build()
    paths = [p for p in listing.read_text().splitlines() if p.endswith(".jpg")][:n]
    stages: dict[str, list[float]] = {"read": [], "decode": [], "infer": [], "write": []}
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        data = Path(path).read_bytes()
        t1 = time.perf_counter()
        image = decode_image(data, "bgr24", path)
        t2 = time.perf_counter()
        result = task.image(image)
        t3 = time.perf_counter()
        origin = Origin(path, path, None, None, None, image.shape[1], image.shape[0])
        json.dumps(make_record(origin, result), separators=(",", ":"))
        t4 = time.perf_counter()
        if i >= 3:  # the first calls warm the session up
            for key, a, b in (("read", t0, t1), ("decode", t1, t2), ("infer", t2, t3),
                              ("write", t3, t4)):
                stages[key].append((b - a) * 1e3)
    return {k: statistics.median(v) for k, v in stages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--task", choices=("detect", "faces"), default="detect")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-dpm", action="store_true")
    parser.add_argument("--no-runs", action="store_true", help="only the DPM section")
    args = parser.parse_args()

    from viewfinder.config import shared_dir

    os.environ.setdefault("VIEWFINDER_MODELS", str(shared_dir() / "models"))
    ray = not args.no_ray
    if ray:
        try:
            import ray.data  # noqa: F401
        except ImportError:
            print("ray not installed: pip install 'viewfinder[ray]' (Ray skipped)")
            ray = False
    print(describe_host(["numpy", "cv2", "onnxruntime", "openvino", "ray", "numba"]))
    tmp = Path(tempfile.mkdtemp(prefix="vf-scale-bench-"))
    same = True if args.no_runs else _runs(args, ray, tmp)
    if not args.no_dpm:
        same = _dpm_mining(args.workers, ray, tmp) and same
    return 0 if same else 1


def _runs(args, ray: bool, tmp: Path) -> bool:
    """The task over images and videos on every engine; whether outputs are identical."""
    from viewfinder.config import shared_dir
    from viewfinder.media.sources import open_source

    spec = _spec(args.task)
    listing = _inputs(shared_dir(), args.images, args.videos, tmp)
    source = open_source(listing, max_frames=args.frames)
    print(f"inputs: {source.images} images + {len(source.streams)} videos x {args.frames} "
          f"frames; task {spec.name} ({spec.model or 'default'}), {args.workers} workers")
    engines = {"serial": lambda p: _serial(spec, source, p),
               "pool": lambda p: _pool(spec, source, p, args.workers)}
    if ray:
        engines["ray"] = lambda p: _ray(spec, source, p, args.workers)
    runs: dict[str, list[dict]] = {k: [] for k in engines}
    digests: dict[str, str] = {}
    for r in range(args.rounds):
        for name, fn in engines.items():
            out = tmp / f"{name}-{r}.jsonl"
            runs[name].append(fn(out))
            digests[name] = _sha(out)
            print(f"  round {r + 1} {name}: {runs[name][-1]['wall']:.1f} s", flush=True)
    base = statistics.median(x["wall"] for x in runs["serial"])
    print(f"\n{'engine':8} {'wall s':>8} {'items/s':>8} {'speed-up':>9} {'start-up s':>11} "
          f"{'warm-up s':>10}")
    for name, xs in runs.items():
        wall = statistics.median(x["wall"] for x in xs)
        items = xs[0]["items"]
        print(f"{name:8} {wall:8.1f} {items / wall:8.1f} {base / wall:8.2f}x "
              f"{statistics.median(x['startup'] for x in xs):11.2f} "
              f"{statistics.median(x['warmup'] for x in xs):10.2f}")
    if "ray" in runs:
        pool = statistics.median(x["wall"] for x in runs["pool"])
        ray_wall = statistics.median(x["wall"] for x in runs["ray"])
        print(f"ray / pool wall: {ray_wall / pool:.2f}")
    for name in ("pool", "ray"):
        if name in runs:
            print(f"threads per {name} worker (read back): {_threads(runs[name][-1]['threads'])}")
    same = len(set(digests.values())) == 1
    print(f"JSON lines identical across engines: {'yes' if same else 'NO'} {digests}")
    costs = _costs(spec, listing)
    total = sum(costs.values())
    print("per image, one worker, 1 thread (median ms): " + ", ".join(
        f"{k} {v:.2f}" for k, v in costs.items()) + f"; total {total:.1f} ms "
          f"= {1000 / total:.1f} images/s per core")
    return same


def _mining_units(model, data, params, kind: str) -> list:
    from viewfinder.dpm.train.mining import ImageUnit, model_token, window_limit

    token = model_token(model)
    if kind == "negatives":  # each image's share of the cache, as training asks
        limit = window_limit(model, params.cache_examples, params.cache_bytes,
                             len(data.negatives), params.max_neg_per_image)
        return [ImageUnit("negatives", token, model, i, threshold=params.neg_margin,
                          limit=limit) for i in data.negatives]
    by_image: dict[str, list] = {}
    for pos in data.positives:
        by_image.setdefault(pos.image_id, []).append(pos.box)
    return [ImageUnit("positives", token, model, i, tuple(b), params.min_overlap)
            for i, b in by_image.items()]


def _digest(h, res: list) -> None:
    """Add one image's search results to the hash ``h``."""
    for item in res:
        if isinstance(item, tuple):  # a window: key, component, features
            h.update(repr(item[:2]).encode())
            h.update(item[2].tobytes())
        else:  # a BoxResult
            for comp, feat in item.entries or []:
                h.update(str(comp).encode())
                h.update(feat.tobytes())


def _dpm_mining(workers: int, ray: bool, tmp: Path) -> bool:
    """Mining and relabelling passes of DPM training, serial vs pool vs Ray."""
    import json

    from viewfinder.config import shared_dir
    from viewfinder.dpm.train.data import TrainingData
    from viewfinder.dpm.train.mining import SearchSetup, search_image
    from viewfinder.dpm.train.params import TrainParams
    from viewfinder.dpm.train.stages import train
    from viewfinder.scale.mapper import open_mapper

    voc = shared_dir() / "data" / "coco256-voc"
    params = TrainParams()
    t0 = time.perf_counter()
    models = {stage: train(voc, "person", tmp / "dpm-run", params, until=stage).model
              for stage in ("root_init", "parts_init")}
    data = TrainingData.from_dict(json.loads((tmp / "dpm-run" / "data.json").read_text()))
    print(f"\nDPM mining stage (coco256-voc person, defaults; root_init + parts_init "
          f"trained in {time.perf_counter() - t0:.0f} s): {len(data.negatives)} negative, "
          f"{len({p.image_id for p in data.positives})} positive images")
    setup = SearchSetup(str(voc), "train", params.sbin, params.interval,
                        params.pyramid_cache_mb * 1_000_000)
    engines = [("serial", 0, "pool"), ("pool", workers, "pool")] + (
        [("ray", workers, "ray")] if ray else [])
    print(f"{'model':11} {'pass':10} {'engine':7} {'start s':>8} {'wall s':>8} "
          f"{'speed-up':>9} {'windows':>8}  digest")
    same = True
    serial: dict[tuple[str, str], tuple[float, str]] = {}  # wall time and digest per pass
    for name, n, engine in engines:
        t0 = time.perf_counter()
        mapper = open_mapper(search_image, setup, workers=n, engine=engine)
        list(mapper.map(_mining_units(models["root_init"], data, params, "negatives")[:1]))
        start = time.perf_counter() - t0
        with mapper:
            for stage, model in models.items():
                for kind in ("negatives", "positives"):
                    units = _mining_units(model, data, params, kind)
                    t0, h, count = time.perf_counter(), hashlib.sha256(), 0
                    for res in mapper.map(units):  # streamed: windows are MBs an image
                        _digest(h, res)
                        count += len(res)
                    wall = time.perf_counter() - t0
                    mine = h.hexdigest()[:12]
                    base, digest = serial.setdefault((stage, kind), (wall, mine))
                    same = same and digest == mine
                    print(f"{stage:11} {kind:10} {name:7} {start:8.1f} {wall:8.1f} "
                          f"{base / wall:8.2f}x {count:8d}  {mine}", flush=True)
    print(f"DPM searches identical across engines: {'yes' if same else 'NO'}")
    return same



if __name__ == "__main__":
    sys.exit(main())
