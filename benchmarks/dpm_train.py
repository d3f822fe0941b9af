"""DPM training speed: one optimiser pass over a 10k x 10k cache, a small run by stage.

Run: ``.venv/bin/python benchmarks/dpm_train.py [--n 10000 --d 10000] [--no-run]``.

Part 1 times one pass of each solver over a dense float32 cache of ``n`` examples of
``d`` dimensions (400 MB at 10k x 10k), interleaved in one loop with the peers
(scikit-learn's ``SGDClassifier.partial_fit``, one epoch of plain SGD in C, and a
NumPy pass), and prints the memory-bandwidth floor (one read of the cache at the
bandwidth measured by a NumPy sum over the same array). Part 2 trains a tiny DPM on a
synthetic VOC set and prints the wall time of every stage, then solves one real DPM
feature cache (latent positives, hard negatives, deformation bounds) with learn.cc's
SGD and with dual coordinate descent and prints both objectives, then the solver as it was
before issue 18 (``dcd_before``) against today's on that cache.

``--voc DIR [--set C=1 ...] [--save-caches DIR]``: a full training run instead (long: the
defaults on coco256-voc take ~12 min of CPU), printing wall and CPU time per stage, every
solve (examples, warm start, passes, seconds, objective) and the held-out AP07.
``--cache A.npz B.npz``: only the before/after solver comparison on saved caches.
"""

from __future__ import annotations

import argparse
import resource
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
                      u, w, inv_r, np.zeros(d), lower, perm, np.zeros(n, np.bool_), np.inf,
                      -np.inf)

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


def _dcd_pass_before(data, ptr, start, chosen, labels, upper, qii, alpha, u, w, inv_r, lower,
                     perm):  # pragma: no cover - numba
    """The DCD kernel before issue 18 (``dot`` inlined; no shrinking, no proximal centre)."""
    pg_max, pg_min = -np.inf, np.inf
    for q in range(perm.shape[0]):
        i = perm[q]
        e = chosen[i]
        s, m = start[e], ptr[e + 1] - ptr[e]
        ws, xs = w[s:s + m], data[ptr[e]:ptr[e + 1]]
        y = labels[i]
        acc = 0.0
        for k in range(m):
            acc += ws[k] * xs[k]
        g = y * acc - 1.0
        a = alpha[i]
        pg = g
        if a <= 0.0:
            pg = min(g, 0.0)
        elif a >= upper[i]:
            pg = max(g, 0.0)
        pg_max = max(pg_max, pg)
        pg_min = min(pg_min, pg)
        if pg == 0.0 or qii[i] <= 0.0:
            continue
        a_new = min(max(a - g / qii[i], 0.0), upper[i])
        delta = (a_new - a) * y
        alpha[i] = a_new
        us, rs, ls = u[s:s + m], inv_r[s:s + m], lower[s:s + m]
        for k in range(m):
            us[k] += delta * xs[k]
            ws[k] = max(us[k] * rs[k], ls[k])
    return pg_max - pg_min


def dcd_before(prob, reg, C, J=1.0, *, passes=300, rounds=3, tol=1e-4, reg_floor=0.01, w0=None,
               seed=0):
    """The DCD solver as it was before issue 18 (commit d734ac7), for comparison.

    Every latent round from alpha = 0, bias floors 1, 0.1, 0.01 of up to ``passes``
    passes each, a step ending only at projected-gradient spread ``tol``; no shrinking,
    no warm start, no proximal bias steps, no duality gap.
    """
    import numba

    from viewfinder.dpm.train import kernels as kern
    from viewfinder.dpm.train import optimize as opt

    kernel = numba.njit(fastmath=True)(_dcd_pass_before)

    t0 = time.perf_counter()
    n, d = prob.num_examples, prob.dim
    w = opt._init_w(prob, reg, w0)
    lower = np.maximum(reg.lower, kern.NO_BOUND)
    upper = np.where(prob.labels > 0, C * J, C).astype(np.float64)
    floors = [f for f in (1.0, 0.1) if f > reg_floor] + [reg_floor]
    rng = np.random.default_rng(seed)
    multi = (np.diff(prob.ex_ptr) > 1).any()
    total = 0
    for _ in range(max(rounds, 1)):
        chosen = opt._choose_entries(prob, w)
        alpha, u, w = np.zeros(n), np.zeros(d), np.zeros(d)
        for floor in floors:
            inv_r = 1.0 / np.maximum(reg.reg_mult, floor)
            w = np.maximum(u * inv_r, lower)
            diag = kern.qii(prob.data, prob.ptr, prob.start, chosen, inv_r)
            for _k in range(passes):
                spread = kernel(prob.data, prob.ptr, prob.start, chosen, prob.labels, upper,
                                diag, alpha, u, w, inv_r, lower,
                                rng.permutation(n).astype(np.int64))
                total += 1
                if spread < tol:
                    break
        if not multi:
            break
    w = opt._polish_free(prob, opt._choose_entries(prob, w), w, reg, upper)
    return opt.SolveResult(w, opt.objective(prob, w, reg, C, J), passes=total,
                           seconds=time.perf_counter() - t0)


def compare_before_after(prob, reg, C, J, w0=None, label="") -> None:
    """The solver before issue 18 against the current one on one cache (cold start)."""
    from viewfinder.dpm.train import optimize as opt

    print(f"\nbefore/after on one cache{label}: {prob.num_examples} examples "
          f"({int((prob.labels > 0).sum())} pos), {prob.dim} dims, "
          f"{prob.data.nbytes / 1e6:.0f} MB, C={C}")
    rows = []
    for name, solve in (("before: dcd (300 passes, PG tol 1e-4)",
                         lambda: dcd_before(prob, reg, C, J, w0=w0)),
                        ("after:  dcd defaults (gap 1e-3)",
                         lambda: opt.dcd(prob, reg, C, J, w0=w0))):
        c0 = time.process_time()
        r = solve()
        rows.append((name, r.objective.total, r.passes, r.seconds, time.process_time() - c0))
    for name, f, k, secs, cpu in rows:
        print(f"  {name:40s} objective {f:.6f}  passes {k:5d}  {secs:7.1f} s wall "
              f"{cpu:7.1f} s CPU")
    print(f"  after/before objective {rows[1][1] / rows[0][1]:.6f}, CPU "
          f"{rows[0][4] / max(rows[1][4], 1e-9):.1f}x less")


def load_cache(path):
    """A problem saved by ``--save-caches`` (or :func:`save_cache`)."""
    from viewfinder.dpm.train import optimize as opt

    z = np.load(path)
    prob = opt.Problem(z["data"], z["ptr"], z["start"], z["ex_ptr"], z["labels"], int(z["dim"]))
    return prob, opt.Regularizer(z["reg_mult"], z["learn_mult"], z["lower"]), z["w0"]


def save_cache(path, prob, reg, w0) -> None:
    np.savez(path, data=prob.data, ptr=prob.ptr, start=prob.start, ex_ptr=prob.ex_ptr,
             labels=prob.labels, dim=prob.dim, reg_mult=reg.reg_mult, learn_mult=reg.learn_mult,
             lower=reg.lower, w0=w0)


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
            ("dcd, defaults (gap 1e-3)", lambda: opt.dcd(prob, reg, C, J)),
            ("dcd, gap 1e-2", lambda: opt.dcd(prob, reg, C, J, gap_tol=1e-2))):
        r = solve()
        print(f"  {name:38s} objective {r.objective.total:.6f}  passes {r.passes:6d}  "
              f"{r.seconds:6.2f} s")
    compare_before_after(prob, reg, C, J, model.to_vector(), " (synthetic run)")


def bench_full_run(voc: str, cls: str, out: str, overrides: dict,
                   save_caches: str | None = None, workers: int = 0) -> None:
    """Train on a real VOC set (``--voc``): wall and CPU time per stage, every solve, AP."""
    import logging

    from viewfinder.dpm.train import stages
    from viewfinder.dpm.train.evaluate import evaluate
    from viewfinder.dpm.train.params import TrainParams
    from viewfinder.dpm.train.stages import train

    if save_caches:  # every solve's problem, for --cache
        Path(save_caches).mkdir(parents=True, exist_ok=True)
        solve, count = stages._Trainer._solve, [0]

        def saving(self, prob, reg, stage, model=None, alpha0=None):
            w0 = model.to_vector() if model is not None else np.zeros(prob.dim)
            save_cache(Path(save_caches) / f"solve{count[0]:02d}_{stage}.npz", prob, reg, w0)
            count[0] += 1
            return solve(self, prob, reg, stage, model, alpha0)

        stages._Trainer._solve = saving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = TrainParams().replace(**overrides)
    print(f"\nfull run: {voc} class {cls}, params {overrides or 'defaults'} -> {out}")
    t0, c0 = time.perf_counter(), time.process_time()
    run = train(voc, cls, out, params, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"\ntraining: {wall:.0f} s wall, {cpu:.0f} s process CPU (all threads), "
          f"{kids.ru_utime + kids.ru_stime:.0f} s CPU of {workers} worker processes")
    print(f"  {'stage':14s} {'wall s':>8s} {'CPU s':>8s}")
    for stage, secs in run.stage_seconds.items():
        print(f"  {stage:14s} {secs:8.1f} {run.stage_cpu_seconds.get(stage, float('nan')):8.1f}")
    print(f"\n  {'solve':>5s} {'stage':13s} {'examples':>8s} {'warm':>5s} {'passes':>6s} "
          f"{'seconds':>8s} {'objective':>10s}")
    for k, sv in enumerate(run.solves):
        print(f"  {k:5d} {sv['stage']:13s} {sv['examples']:8d} {str(sv['warm']):>5s} "
              f"{sv['passes']:6d} {sv['seconds']:8.2f} {sv['objective']:10.6f}")
    for split in ("test",):
        res = evaluate(run.model, voc, split, cls, workers=workers)
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
    ap.add_argument("--save-caches", metavar="DIR", help="with --voc: save every solve's cache")
    ap.add_argument("--cache", nargs="+", metavar="NPZ",
                    help="only compare the solvers before/after on saved caches")
    ap.add_argument("-C", type=float, default=0.001, help="C for --cache")
    ap.add_argument("--workers", type=int, default=0,
                    help="with --voc: worker processes for the searches (the same model)")
    args = ap.parse_args()
    print(describe_host(["numpy", "numba", "scipy", "sklearn"]))
    if args.cache:
        for path in args.cache:
            prob, reg, w0 = load_cache(path)
            compare_before_after(prob, reg, args.C, 1.0, w0, f" {Path(path).name}")
        return
    if args.voc:
        overrides = {k: type(getattr(_default_params(), k))(v)
                     for k, v in (kv.split("=", 1) for kv in args.set)}
        with tempfile.TemporaryDirectory() as tmp:
            bench_full_run(args.voc, args.cls, args.out or str(Path(tmp) / "run"), overrides,
                           args.save_caches, args.workers)
        return
    bench_pass(args.n, args.d, args.repeat)
    if not args.no_run:
        bench_run()


if __name__ == "__main__":
    main()
