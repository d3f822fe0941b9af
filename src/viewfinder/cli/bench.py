"""``viewfinder bench``: time a model msame-style, compare models, backends and precisions."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from viewfinder.errors import ConfigError, ViewfinderError
from viewfinder.fileio import atomic_write_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from viewfinder.runtime.base import Session
    from viewfinder.runtime.bench import BenchResult, MatrixRow, Stats
    from viewfinder.runtime.bench_io import Sample
    from viewfinder.runtime.specs import ModelSpec

_PRECISIONS = ("f32", "bf16", "fp16", "int8")


class _Precision(click.Choice):
    """A precision choice that also accepts the aliases (``fp32`` for ``f32``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        from viewfinder.runtime.specs import PRECISION_ALIASES

        return super().convert(PRECISION_ALIASES.get(str(value).lower(), value), param, ctx)


@click.command("bench")
@click.option("--model", "model", required=True, help="Zoo name or model file.")
@click.option("--input", "inputs", multiple=True,
              help="DIR, FILE.npy, FILE.bin or image (repeatable); none = zeros.")
@click.option("--out", "outdir", default=None, type=click.Path(file_okay=False),
              help="Write one file per output tensor per input into this directory "
                   "(created if missing; its parent must exist).")
@click.option("--output", "outdir_alias", default=None, type=click.Path(file_okay=False),
              hidden=True)
@click.option("--outfmt", type=click.Choice(["txt", "bin", "npy"]), default="txt",
              show_default=True)
@click.option("--loop", default=100, show_default=True, help="Timed passes over the inputs.")
@click.option("--warmup", default=5, show_default=True, help="Untimed passes first.")
@click.option("--batch", default=1, show_default=True, help="Inputs per call (dim 0).")
@click.option("--shape", "shape_texts", multiple=True,
              help="Input shape for dynamic dims: 1,3,640,640 or name:1,3,640,640.")
@click.option("--provider", default="cpu", show_default=True, help="ONNX Runtime provider.")
@click.option("--backend", type=click.Choice(["auto", "ort", "openvino"]), default="auto",
              show_default=True, help="auto: time both on this model, keep the faster.")
@click.option("--backends", default=None,
              help="'all' or a comma list: table of backend x precision instead.")
@click.option("--precision", type=_Precision(_PRECISIONS), default="f32", show_default=True)
@click.option("--variant", "variants", multiple=True, metavar="PRECISION=FILE",
              help="With --backends: the converted model to time at a precision "
                   "(e.g. int8=m.int8.onnx from `viewfinder convert`).")
@click.option("--device", default="cpu", show_default=True, help="OpenVINO device.")
@click.option("--threads", default=0, show_default=True, help="Intra-op threads (0 = auto).")
@click.option("--random", "random_data", is_flag=True, help="Seeded random data, not zeros.")
@click.option("--compare", "compare", default=None,
              help="Second model (zoo name or file), or BACKEND:PRECISION (e.g. ort:f32) for "
                   "the same model; run interleaved, prints the ratio and output deltas.")
@click.option("--task-image", "task_images", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="With --compare on a face model: images for the face-box / 106-point "
                   "deltas (default: the shared group_t1.jpg and crowd_selfie.jpg).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Write stats and per-call times as JSON.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write per-call times as CSV.")
def cli(**opts: Any) -> None:
    """Benchmark a model: latency min/mean/p50/p90/p99/max and throughput.

    With no --input it feeds zeros (or --random data) shaped by the model; images
    go through the model's declared preprocessing (zoo models). --compare M2 runs
    both models interleaved and prints their ratio and output deltas; --backends all
    prints a backend x precision table with deltas against the f32 reference.
    """
    from viewfinder.runtime.bench import check_loop, run_bench
    from viewfinder.runtime.zoo import resolve_model

    check_loop(opts["loop"], opts["warmup"])
    _check_outputs(opts)
    path, spec = resolve_model(opts["model"])
    if opts["backends"]:
        _matrix(path, spec, opts)
        return
    session = _load(path, opts["backend"], opts["precision"], opts, spec)
    samples = _samples(session, spec, opts)
    if opts["compare"]:
        _compare(session, samples, opts)
        return
    with _bar(opts["loop"] * len(samples)) as progress:
        result = run_bench(session, samples, opts["loop"], opts["warmup"], opts["batch"],
                           progress)
    _print_result(session.describe(), result)
    _write(result, session, opts)


def _check_outputs(opts: dict[str, Any]) -> None:
    """Every output location, checked before any model is loaded or loop runs."""
    from viewfinder.errors import InputFileError

    alias = opts.pop("outdir_alias")
    if alias is not None and opts["outdir"] is not None and alias != opts["outdir"]:
        raise ConfigError(f"--out {opts['outdir']} and --output {alias}: give one directory")
    opts["outdir"] = opts["outdir"] or alias
    if opts["outdir"] is not None:
        out = Path(opts["outdir"])
        if out.exists() and not out.is_dir():
            raise InputFileError(f"{out}: --out must be a directory")
        if not out.exists() and not out.resolve().parent.is_dir():
            raise InputFileError(f"{out}: --out's parent directory {out.parent} does not exist")
    for flag, key in (("--json", "json_path"), ("--csv", "csv_path")):
        if opts[key] is not None:
            target = Path(opts[key])
            if target.is_dir():
                raise InputFileError(f"{target}: {flag} is a directory, expected a file name")
            if not target.resolve().parent.is_dir():
                raise InputFileError(f"{target}: {flag}'s directory {target.parent} does "
                                     "not exist")


def _load(path: Path, backend: str, precision: str, opts: dict[str, Any],
          spec: ModelSpec | None = None) -> Session:
    """Load on ``backend``; ``auto`` first learns the input shapes so its trial uses them.

    With ``auto``, a ``--provider`` other than cpu means ONNX Runtime and a ``--device``
    other than cpu means OpenVINO (only that backend has it).
    """
    from viewfinder.runtime.session import load_session

    if backend == "auto" and opts["provider"].lower() != "cpu":
        backend = "ort"
    elif backend == "auto" and opts["device"].lower() != "cpu":
        backend = "openvino"
    shapes = None
    if backend == "auto":
        probe = load_session(path, backend="ort", threads=opts["threads"])
        with contextlib.suppress(ViewfinderError):  # dynamic dims: auto uses the zoo size
            shapes = _shapes(probe, spec, opts)
    return load_session(path, backend=backend, provider=opts["provider"],
                        threads=opts["threads"], precision=precision, device=opts["device"],
                        shapes=shapes)


def _shapes(session: Session, spec: ModelSpec | None, opts: dict[str, Any]
            ) -> dict[str, tuple[int, ...]]:
    from viewfinder.runtime.bench_io import IMAGE_SUFFIXES, input_shapes, parse_shapes

    shapes = parse_shapes(opts["shape_texts"], session.inputs)
    shapes = shapes or _npy_shapes(session, opts["inputs"], opts["batch"])
    images = any(Path(t).suffix.lower() in IMAGE_SUFFIXES or Path(t).is_dir()
                 for t in opts["inputs"])
    if images and spec is not None and spec.input is not None and not shapes:
        info = session.inputs[0]
        if info.is_dynamic:
            w, h = spec.input.image_size
            nchw = spec.input.layout == "NCHW"
            shapes = {info.name: (opts["batch"], 3, h, w) if nchw else (opts["batch"], h, w, 3)}
    return input_shapes(session, shapes, opts["batch"])


def _npy_shapes(session: Session, inputs: tuple[str, ...], batch: int
                ) -> dict[str, tuple[int, ...]]:
    """A dynamic single-input model fed ``.npy`` files takes its shape from the first one."""
    import numpy as np

    info = session.inputs[0]
    first = Path(inputs[0]) if inputs else None
    if len(session.inputs) != 1 or not info.is_dynamic or first is None:
        return {}
    if first.is_dir():
        first = next(iter(sorted(first.glob("*.npy"))), first)
    if first.suffix.lower() != ".npy" or not first.is_file():
        return {}
    try:
        shape = np.load(first, mmap_mode="r", allow_pickle=False).shape
    except (ValueError, OSError):
        return {}  # reading it later gives the one-line error
    shape = shape if len(shape) == len(info.shape) else (1, *shape)
    return {info.name: (batch * shape[0], *shape[1:])}


def _samples(session: Session, spec: ModelSpec | None, opts: dict[str, Any]) -> list[Sample]:
    from viewfinder.runtime.bench_io import load_samples, synthetic_samples

    shapes = _shapes(session, spec, opts)
    if opts["inputs"]:
        return load_samples(session, spec, opts["inputs"], shapes, opts["batch"])
    return synthetic_samples(session, shapes, opts["random_data"])


@contextlib.contextmanager
def _bar(total: int) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), transient=True,
                  console=_console(err=True)) as bar:
        task = bar.add_task("bench", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def _console(err: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=err, highlight=False, soft_wrap=True, markup=False)


def _stats_row(stats: Stats) -> list[str]:
    return [f"{stats.min:.3f}", f"{stats.mean:.3f}", f"{stats.p50:.3f}", f"{stats.p90:.3f}",
            f"{stats.p99:.3f}", f"{stats.max:.3f}", f"{stats.throughput:.1f}"]


def _stats_table(rows: list[tuple[str, Stats]]) -> Table:
    from rich.table import Table

    table = Table("model", "min ms", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms",
                  "samples/s", box=None)
    for name, stats in rows:
        table.add_row(name, *_stats_row(stats))
    return table


def _print_result(describe: str, result: BenchResult) -> None:
    console = _console()
    console.print(describe)
    console.print(f"{result.stats.runs} calls")
    console.print(_stats_table([("", result.stats)]))


def _write(result: BenchResult, session: Session, opts: dict[str, Any]) -> None:
    """Outputs and reports, written only after every run succeeded (atomically)."""
    from viewfinder.runtime.bench_io import write_outputs

    if opts["outdir"]:
        Path(opts["outdir"]).mkdir(exist_ok=True)
        for name, outs in result.outputs:
            write_outputs(opts["outdir"], name, outs, session.outputs, opts["outfmt"])
    if opts["json_path"]:
        from viewfinder.runtime.threads import cpu_flags

        doc = {"model": session.path, "session": session.describe(),
               "stats": result.stats.as_dict(), "cpu_flags": list(cpu_flags()),
               "versions": _versions(), "times_ms": [round(t * 1e3, 6) for t in result.times]}
        atomic_write_text(opts["json_path"], json.dumps(doc, indent=1))
    if opts["csv_path"]:
        n = len(result.outputs)
        lines = ["call,sample,ms"] + [f"{i},{result.outputs[i % n][0]},{t * 1e3:.6f}"
                                      for i, t in enumerate(result.times)]
        atomic_write_text(opts["csv_path"], "\n".join(lines) + "\n")


def _versions() -> dict[str, str]:
    from viewfinder.runtime.auto import backend_versions

    return backend_versions()


def _compare(session: Session, samples: list[Sample], opts: dict[str, Any]) -> None:
    from viewfinder.runtime.bench import compare_outputs, run_interleaved
    from viewfinder.runtime.specs import PRECISION_ALIASES
    from viewfinder.runtime.zoo import resolve_model

    target = opts["compare"]
    backend, sep, precision = target.partition(":")
    precision = PRECISION_ALIASES.get(precision.lower(), precision)
    if sep and backend in ("ort", "openvino", "auto") and precision in _PRECISIONS:
        other = _load(Path(session.path), backend, precision, opts)  # same model, other run
    else:
        path2, spec2 = resolve_model(target)
        other = _load(path2, opts["backend"], opts["precision"], opts, spec2)
    samples2 = _adapt(samples, other)
    with _bar(opts["loop"]) as progress:
        a, b = run_interleaved([session, other], [samples, samples2], opts["loop"],
                               opts["warmup"], opts["batch"], progress)
    console = _console()
    console.print(f"A: {session.describe()}\nB: {other.describe()}")
    console.print(_stats_table([("A", a.stats), ("B", b.stats)]))
    console.print(f"ratio B/A (p50): {b.stats.p50 / a.stats.p50:.3f}  "
                  f"(A is {b.stats.p50 / a.stats.p50:.2f}x as fast as B)")
    names = [o.name for o in session.outputs]
    try:
        for (_, oa), (_, ob) in zip(a.outputs, b.outputs, strict=True):
            for d in compare_outputs(oa, ob, names):
                console.print(f"output {d.index} {d.name}: max abs {d.max_abs:.3g}, "
                              f"mean abs {d.mean_abs:.3g}")
    except ConfigError as exc:
        console.print(f"outputs not compared: {exc}")
    for line in _task_lines(session, other, opts["task_images"]):
        console.print(line)


def _task_lines(a: Session, b: Session, images: tuple[str, ...]) -> list[str]:
    """For a face model: how far boxes, keypoints and 106 points move from A to B."""
    from viewfinder.faces.compare import face_task_kind, task_deltas

    kind = face_task_kind(a)
    if kind is None:
        return []
    if not images:
        from viewfinder.config import shared_dir

        found = [shared_dir() / "images" / n for n in ("group_t1.jpg", "crowd_selfie.jpg")]
        images = tuple(str(p) for p in found if p.is_file())
    if not images:
        return ["task deltas skipped: no images (give --task-image)"]
    detector = None
    if kind == "landmarks":
        from viewfinder.faces import load_detector

        try:
            detector = load_detector("scrfd_500m", backend="ort")
        except ViewfinderError as exc:
            return [f"task deltas skipped: the faces come from scrfd_500m: {exc}"]
    return [str(d) for d in task_deltas(a, b, images, detector)]


def _adapt(samples: list[Sample], other: Session) -> list[Sample]:
    """The same input tensors for the second model, matched by position (names may differ)."""
    names = [i.name for i in other.inputs]
    out = []
    for name, feeds in samples:
        if len(feeds) != len(names):
            raise ConfigError(f"--compare: {other.path} has {len(names)} inputs, "
                              f"the first model {len(feeds)}")
        mapped = dict(zip(names, feeds.values(), strict=True))
        other.check_feeds(mapped)
        out.append((name, mapped))
    return out


def _matrix(path: Path, spec: ModelSpec | None, opts: dict[str, Any]) -> None:
    from viewfinder.runtime.bench import backend_matrix
    from viewfinder.runtime.session import BACKENDS, available_backends
    from viewfinder.runtime.threads import cpu_flags

    wanted = opts["backends"]
    backends = available_backends() if wanted == "all" else wanted.split(",")
    for b in backends:
        if b not in BACKENDS[:-1]:
            raise ConfigError(f"--backends {wanted}: unknown backend {b!r} (ort, openvino)")
    ref = _load(path, backends[0], "f32", opts)
    samples = _samples(ref, spec, opts)
    ref.close()
    files = _variants(opts["variants"])
    with _bar(opts["loop"]) as progress:
        rows = backend_matrix(lambda b, p: _load(files.get(p, path), b, p, opts), backends,
                              _PRECISIONS, samples, opts["loop"], opts["warmup"], opts["batch"],
                              progress)
    console = _console()
    console.print(f"{path}: cpu flags {' '.join(cpu_flags())}; "
                  + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    console.print(_matrix_table(rows))
    for r in rows:
        if r.result is None:
            console.print(f"{r.backend} {r.precision}: {r.error}")
    if opts["json_path"]:
        doc = {"model": str(path), "cpu_flags": list(cpu_flags()), "versions": _versions(),
               "rows": [_row_doc(r) for r in rows]}
        atomic_write_text(opts["json_path"], json.dumps(doc, indent=1))


def _variants(texts: tuple[str, ...]) -> dict[str, Path]:
    from viewfinder.fileio import check_readable
    from viewfinder.runtime.specs import PRECISION_ALIASES

    out = {}
    for text in texts:
        precision, sep, file = text.partition("=")
        precision = PRECISION_ALIASES.get(precision.lower(), precision)
        if not sep or precision not in _PRECISIONS:
            raise ConfigError(f"--variant {text}: expected PRECISION=FILE with PRECISION one "
                              f"of {', '.join(_PRECISIONS)}")
        out[precision] = check_readable(file, "model file")
    return out


def _matrix_table(rows: list[MatrixRow]) -> Table:
    from rich.table import Table

    table = Table("backend", "precision", "p50 ms", "p90 ms", "p99 ms", "samples/s",
                  "max |d|", "mean |d|", box=None)
    for r in rows:
        if r.result is None:
            table.add_row(r.backend, r.precision, "n/a", "", "", "", "", "")
            continue
        s = r.result.stats
        dmax = max((d.max_abs for d in r.deltas), default=0.0)
        dmean = max((d.mean_abs for d in r.deltas), default=0.0)
        table.add_row(r.backend, r.precision, f"{s.p50:.3f}", f"{s.p90:.3f}", f"{s.p99:.3f}",
                      f"{s.throughput:.1f}", f"{dmax:.3g}", f"{dmean:.3g}")
    return table


def _row_doc(r: MatrixRow) -> dict[str, Any]:
    doc: dict[str, Any] = {"backend": r.backend, "precision": r.precision, "error": r.error}
    if r.result is not None:
        doc["stats"] = r.result.stats.as_dict()
        doc["describe"] = r.result.describe
        doc["deltas"] = [vars(d) for d in r.deltas]
    return doc
