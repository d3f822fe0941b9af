"""DPM training speed: one optimiser pass over a 10k x 10k cache, a small run by stage.

Run: ``.venv/bin/python benchmarks/dpm_train.py [--n 10000 --d 10000] [--no-run]``.

Part 1 times one pass of each solver over a dense float32 cache of ``n`` examples of
``d`` dimensions (400 MB at 10k x 10k), interleaved in one loop with the peers
(scikit-learn's ``SGDClassifier.partial_fit``, one epoch of plain SGD in C, and a
NumPy pass), and prints the memory-bandwidth floor (one read of the cache at the
bandwidth measured by a NumPy sum over the same array). Part 2 trains a tiny DPM on a
synthetic VOC set and prints the wall time of every stage, then solves one real DPM
feature cache (latent positives, hard negatives, deformation bounds) with learn.cc's
SGD and with dual coordinate descent and prints both objectives.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402


def _cache(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x *= 0.05
    w_true = rng.standard_normal(d).astype(np.float32)
    y = np.where(x @ w_true > 0.5, 1, -1).astype(np.int8)
    return x, y


def _kernel_passes(opt, prob, reg, C):
    """The solvers' inner loops alone: one pass each, no objective evaluation."""
    from viewfinder.dpm.train import kernels as kern

    n, d = prob.num_examples, prob.dim
    rng = np.random.default_rng(0)
    perm = rng.permutation(n).astype(np.int64)
    rand_wait = rng.integers(0, kern.MAX_RND_WAIT, n).astype(np.int64)
    lower = np.maximum(reg.lower, -1e30)
    runs, run_rl = opt._runs(reg.reg_mult * reg.learn_mult)
    chosen = np.arange(n, dtype=np.int64)
    inv_r = 1.0 / np.maximum(reg.reg_mult, 1.0)
    qii = kern.qii(prob.data, prob.ptr, prob.start, chosen, inv_r)
    upper = np.full(n, C)

    def sgd_pass():
        w, wait = np.zeros(d), np.full(n, kern.IN_CACHE, np.int64)
        kern.sgd_pass(prob.data, prob.ptr, prob.start, prob.ex_ptr, prob.labels, w,
                      reg.learn_mult, runs, run_rl, lower, wait, perm, rand_wait, 0, C, 1.0, 1e7)

    def dcd_pass():
        alpha, u, w = np.zeros(n), np.zeros(d), np.zeros(d)
        kern.dcd_pass(prob.data, prob.ptr, prob.start, chosen, prob.labels, upper, qii, alpha,
                      u, w, inv_r, lower, perm)

    return sgd_pass, dcd_pass


def bench_pass(n: int, d: int, repeat: int) -> None:
    """Time one pass of sgd/dcd and the peers over the same cache, interleaved."""
    from viewfinder.dpm.train import optimize as opt

    x, y = _cache(n, d)
    prob = opt.Problem.from_dense(x, y)
    reg = opt.Regularizer.plain(d)
    C = 0.002
    sgd_pass, dcd_pass = _kernel_passes(opt, prob, reg, C)
    peers = {"vf sgd pass (learn.cc kernel)": sgd_pass,
             "vf dcd pass (kernel)": dcd_pass,
             "vf sgd(passes=1) incl. objective": lambda: opt.sgd(prob, reg, C, passes=1,
                                                                min_iter=0),
             "vf dcd(passes=1) incl. objective": lambda: opt.dcd(prob, reg, C, passes=1,
                                                                rounds=1),
             "vf objective (parallel)": lambda: opt.objective(prob, np.zeros(d), reg, C, 1.0),
             "numpy x @ w (BLAS)": lambda: x @ np.ones(d, np.float32),
             "numpy x.sum() (bandwidth)": lambda: x.sum()}
    try:
        from sklearn.linear_model import SGDClassifier

        clf = SGDClassifier(loss="hinge", alpha=1e-4, max_iter=1, tol=None)
        peers["sklearn SGDClassifier 1 epoch"] = lambda: clf.partial_fit(x, y, classes=[-1, 1])
    except ImportError:
        print("scikit-learn not installed: peer skipped")
    times: dict[str, list[float]] = {k: [] for k in peers}
    for fn in peers.values():  # warm-up (numba compile, page-in)
        fn()
    for _ in range(repeat):
        for name, fn in peers.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    mb = x.nbytes / 1e6
    floor = statistics.median(times["numpy x.sum() (bandwidth)"])
    print(f"\ncache {n} x {d} float32 = {mb:.0f} MB; read bandwidth (numpy sum) "
          f"{mb / 1e3 / floor:.1f} GB/s -> floor {floor * 1e3:.0f} ms per read of the cache")
    ref_name = "sklearn SGDClassifier 1 epoch"
    ref = statistics.median(times[ref_name]) if ref_name in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"  {ref / med:5.2f}x sklearn speed" if ref else ""
        print(f"  {name:34s} median {med * 1e3:8.1f} ms  (min {min(ts) * 1e3:7.1f}){ratio}")
    r_sgd = opt.sgd(prob, reg, C, passes=10, min_iter=0)
    r_dcd = opt.dcd(prob, reg, C, passes=10, rounds=1)
    print(f"  objective after 10 passes: sgd {r_sgd.objective.total:.5f}, "
          f"dcd {r_dcd.objective.total:.5f}")


def bench_run() -> None:
    """Train a tiny model on a synthetic VOC set and print the time of each stage."""
    from viewfinder.dpm.train.evaluate import evaluate
    from viewfinder.dpm.train.params import TrainParams
    from viewfinder.dpm.train.stages import train
    from viewfinder.dpm.train.synthetic import CLASS, write_synthetic_voc

    with tempfile.TemporaryDirectory() as tmp:
        voc = write_synthetic_voc(Path(tmp) / "voc", n_train=32, n_test=24, seed=0)
        t0 = time.perf_counter()
        run = train(voc, CLASS, Path(tmp) / "run", TrainParams.small())
        total = time.perf_counter() - t0
        print(f"\nsmall training run, 32 synthetic images ({total:.1f} s in all):")
        for stage, secs in run.stage_seconds.items():
            obj = run.objective.get(stage)
            tail = f"   {len(obj)} solver passes, last objective {obj[-1]:.5f}" if obj else ""
            print(f"  {stage:14s} {secs:7.2f} s{tail}")
        res = evaluate(run.model, voc, "test")
        print(f"  held-out AP {res.ap:.3f} on 24 images ({res.seconds:.1f} s to evaluate)")
        bench_solvers_on_real_cache(run.model, voc, TrainParams.small())


def _real_cache(model, voc_root, params):
    """Latent positives + hard negatives of a trained model, as the pipeline caches them."""
    from viewfinder.datasets.voc import VOCDataset
    from viewfinder.dpm.train.cache import FeatureCache
    from viewfinder.dpm.train.data import collect
    from viewfinder.dpm.train.search import (
        PyramidCache,
        best_placements,
        entries_of,
        hard_negatives,
    )

    voc = VOCDataset(voc_root, "train")
    data = collect(voc, model.name, params)
    pyrs = PyramidCache(voc, model.sbin, model.interval, model.padding)
    cache = FeatureCache(model.offsets(), params.cache_examples, params.cache_bytes)
    boxes: dict[str, list] = {}
    for p in data.positives:
        boxes.setdefault(p.image_id, []).append(p.box)
    pos = []
    for image_id, bs in boxes.items():
        pyr = pyrs.get(image_id)
        pos += [entries_of(model, pyr, pls)
                for pls in best_placements(model, pyr, np.array(bs), params.min_overlap) if pls]
    cache.set_positives(pos)
    for image_id in data.negatives:
        pyr = pyrs.get(image_id)
        for pl in hard_negatives(model, pyr, -1.5, params.max_neg_per_image or 200):
            key = (image_id, pl.component, pl.flip, pl.level, pl.rx, pl.ry)
            cache.add_negative(key, pl.component, entries_of(model, pyr, [pl])[0][1])
    return cache


def bench_solvers_on_real_cache(model, voc_root, params) -> None:
    """learn.cc SGD (its own stopping rule) against DCD on one real DPM feature cache."""
    from viewfinder.dpm.train import optimize as opt

    cache = _real_cache(model, voc_root, params)
    prob, reg = cache.problem(), model.regularizer()
    print(f"\nreal DPM cache: {cache.num_pos} latent positives (max over components), "
          f"{cache.num_neg} negatives, {prob.dim} dims, deformation lower bounds active")
    C, J = params.C, params.J
    for name, solve in (
            ("sgd, learn.cc ITER=1e6 MIN_ITER=5e5", lambda: opt.sgd(
                prob, reg, C, J, max_iter=1_000_000, min_iter=500_000)),
            ("dcd, defaults (300 passes, tol 1e-4)", lambda: opt.dcd(prob, reg, C, J,
                                                                   passes=300, tol=1e-4)),
            ("dcd, 50 passes, tol 1e-3", lambda: opt.dcd(prob, reg, C, J, passes=50,
                                                        tol=1e-3))):
        r = solve()
        print(f"  {name:38s} objective {r.objective.total:.6f}  passes {r.passes:6d}  "
              f"{r.seconds:6.2f} s")


def bench_full_run(voc: str, cls: str, out: str, overrides: dict) -> None:
    """Train on a real VOC set (``--voc``): wall and CPU time per stage, every solve, AP."""
    import logging

    from viewfinder.dpm.train.evaluate import evaluate
    from viewfinder.dpm.train.params import TrainParams
    from viewfinder.dpm.train.stages import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = TrainParams().replace(**overrides)
    print(f"\nfull run: {voc} class {cls}, params {overrides or 'defaults'} -> {out}")
    t0, c0 = time.perf_counter(), time.process_time()
    run = train(voc, cls, out, params)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\ntraining: {wall:.0f} s wall, {cpu:.0f} s process CPU (all threads)")
    print(f"  {'stage':14s} {'wall s':>8s} {'CPU s':>8s}")
    for stage, secs in run.stage_seconds.items():
        print(f"  {stage:14s} {secs:8.1f} {run.stage_cpu_seconds.get(stage, float('nan')):8.1f}")
    print(f"\n  {'solve':>5s} {'stage':13s} {'examples':>8s} {'warm':>5s} {'passes':>6s} "
          f"{'seconds':>8s} {'objective':>10s}")
    for k, sv in enumerate(run.solves):
        print(f"  {k:5d} {sv['stage']:13s} {sv['examples']:8d} {str(sv['warm']):>5s} "
              f"{sv['passes']:6d} {sv['seconds']:8.2f} {sv['objective']:10.6f}")
    for split in ("test",):
        res = evaluate(run.model, voc, split, cls)
        print(f"  AP07 on {split}: {res.ap:.4f} ({res.seconds:.0f} s to evaluate)")


def _default_params():
    from viewfinder.dpm.train.params import TrainParams

    return TrainParams()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-run", action="store_true", help="skip the small training run")
    ap.add_argument("--voc", help="full training run on this VOC set instead (long)")
    ap.add_argument("--cls", default="person")
    ap.add_argument("--out", default=None, help="run directory of --voc (a temp dir if unset)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a TrainParams override for --voc, e.g. --set C=0.01")
    args = ap.parse_args()
    print(describe_host(["numpy", "numba", "scipy", "sklearn"]))
    if args.voc:
        overrides = {k: type(getattr(_default_params(), k))(v)
                     for k, v in (kv.split("=", 1) for kv in args.set)}
        with tempfile.TemporaryDirectory() as tmp:
            bench_full_run(args.voc, args.cls, args.out or str(Path(tmp) / "run"), overrides)
        return
    bench_pass(args.n, args.d, args.repeat)
    if not args.no_run:
        bench_run()


if __name__ == "__main__":
    main()
