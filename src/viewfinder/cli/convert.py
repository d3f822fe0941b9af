"""``viewfinder convert``: fused preprocessing, shapes, fp16/int8 (the ATC + AIPP analogue)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from viewfinder.errors import ConfigError

if TYPE_CHECKING:  # the library is imported inside the command (fast --help)
    from viewfinder.runtime.convert import ConvertOptions, ConvertReport, PreprocessSpec


def _floats(value: str | None, what: str, count: int = 3) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise ConfigError(f"--{what} {value!r}: expected numbers separated by commas") from None
    if len(parts) == 1 and count == 3:
        parts *= 3
    if len(parts) != count:
        raise ConfigError(f"--{what} {value!r}: expected {count} values, got {len(parts)}")
    return tuple(parts)


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {value!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def _spec(base: PreprocessSpec | None, flags: dict[str, Any]) -> PreprocessSpec | None:
    """``base`` (from the config file) with the preprocessing flags that were given."""
    from viewfinder.runtime.convert import PreprocessSpec

    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return base
    start = asdict(base) if base is not None else {}
    start.update(given)
    return PreprocessSpec(**{f.name: start[f.name] for f in fields(PreprocessSpec)
                             if f.name in start})


def _options(config: Path | None, precision: str | None, calib: tuple[str, ...],
             spec_flags: dict[str, Any], **rest: Any) -> ConvertOptions:
    """The config file's options, overridden by the flags that were given."""
    from viewfinder.runtime.convert import ConvertOptions, load_config, merge

    options = load_config(config) if config else ConvertOptions()
    spec = _spec(options.preprocess, spec_flags)
    overrides = dict(rest, precision=precision, preprocess=spec)
    if calib:
        overrides["calibration"] = Path(calib[0]) if len(calib) == 1 else tuple(map(Path, calib))
    return merge(options, **overrides)


class _Precision(click.Choice):
    """A precision choice that also accepts the aliases (``fp32`` for ``f32``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        from viewfinder.runtime.specs import PRECISION_ALIASES

        return super().convert(PRECISION_ALIASES.get(str(value).lower(), value), param, ctx)


@click.command("convert")
@click.argument("model", required=False)
@click.option("--model", "model_opt", metavar="MODEL",
              help="The model (zoo name or file), as the other commands take it; "
                   "same as the MODEL argument.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file, written exactly as named (no suffix added). Required.")
@click.option("--output", "output_alias", type=click.Path(dir_okay=False, path_type=Path),
              hidden=True)
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config ([preprocess], [shape], [precision]); flags override it.")
@click.option("--input-format", "input_format",
              type=click.Choice(["float", "rgb", "bgr", "bgra", "rgba", "nv12"]),
              help="What the new model takes: uint8 NHWC rgb/bgr (bgra/rgba: 4 channels, "
                   "the 4th ignored), NV12, or float (unchanged).")
@click.option("--width", type=int, help="Input image width (required for nv12).")
@click.option("--height", type=int, help="Input image height (required for nv12).")
@click.option("--color-matrix", type=click.Choice(["bt601", "bt709"]), help="NV12 colour matrix.")
@click.option("--color-range", type=click.Choice(["limited", "full"]), help="NV12 range.")
@click.option("--model-channels", type=click.Choice(["rgb", "bgr"]),
              help="Channel order the model expects.")
@click.option("--mean", help="Per-channel mean (model order): 'M' or 'R,G,B'.")
@click.option("--std", help="Per-channel std: 'S' or 'R,G,B'.")
@click.option("--scale", help="Multiply by this instead of dividing by std.")
@click.option("--crop", help="Crop X,Y,W,H in input pixels (before resize).")
@click.option("--resize/--no-resize", default=None, help="Resize (bilinear) to the model size.")
@click.option("--input-name", help="Model input to preprocess (default: the only one).")
@click.option("--batch", help="Batch size: an int, or 'dynamic'.")
@click.option("--size", help="Fix the model input's size, WIDTHxHEIGHT.")
@click.option("--precision", type=_Precision(["f32", "fp16", "int8"]),
              help="Weights/compute (f32 default; fp32 is accepted for f32).")
@click.option("--fp16", "fp16", is_flag=True, help="Same as --precision fp16.")
@click.option("--int8", "int8", is_flag=True, help="Same as --precision int8 (needs --calib).")
@click.option("--calib", multiple=True, help="Calibration directory or files (images / .npy).")
@click.option("--calib-limit", type=int, help="Use at most N calibration files (default 32).")
@click.option("--quant-format", type=click.Choice(["qoperator", "qdq"]),
              help="int8 graph format (default qoperator).")
@click.option("--per-channel/--per-tensor", default=None, help="int8 weight scales.")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]),
              help="int8 activation ranges (default minmax; YOLO models: percentile).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Darknet .weights when MODEL is a .cfg.")
@click.option("--keep-edges-float/--quantize-edges", default=None,
              help="int8: keep the first and last Conv/Gemm layers float (default on).")
@click.option("--optimize/--no-optimize", default=None,
              help="Rewrite PRelu as Relu/Mul/Add (faster on ONNX Runtime CPU).")
@click.option("--prelu-to-relu", type=float, metavar="MAX_SLOPE",
              help="Inexact: PRelu with all |slopes| <= MAX_SLOPE becomes Relu (measured).")
@click.option("--verify/--no-verify", default=None, help="Check against NumPy preprocessing.")
def cli(model: str | None, model_opt: str | None, out: Path | None, output_alias: Path | None,
        config: Path | None,
        input_format: str | None, precision: str | None, fp16: bool, int8: bool,
        calib: tuple[str, ...], weights: Path | None, **kw) -> None:
    """Convert MODEL (a zoo name, an .onnx, or a Darknet .cfg) to --out with fused
    preprocessing."""
    from viewfinder.runtime.convert import convert_model, format_report

    if model and model_opt and model != model_opt:
        raise ConfigError(f"MODEL {model} and --model {model_opt}: give one model")
    if not (model or model_opt):
        raise ConfigError("a model is required: viewfinder convert MODEL --out FILE")
    output = _output(out, output_alias)
    source, weights = _source(model or model_opt, weights)
    if fp16 and int8:
        raise ConfigError("--fp16 and --int8: choose one precision")
    precision = "fp16" if fp16 else "int8" if int8 else precision
    spec_flags = {
        "input": input_format, "width": kw.pop("width"), "height": kw.pop("height"),
        "color_matrix": kw.pop("color_matrix"), "color_range": kw.pop("color_range"),
        "model_channels": kw.pop("model_channels"), "mean": _floats(kw.pop("mean"), "mean"),
        "std": _std(kw.pop("std"), kw.pop("scale")), "crop": _crop(kw.pop("crop")),
        "resize": kw.pop("resize"), "input_name": kw.pop("input_name"),
    }
    options = _options(config, precision, calib, spec_flags, batch=kw["batch"],
                       size=_size(kw["size"]), calibration_limit=kw["calib_limit"],
                       quant_format=kw["quant_format"], per_channel=kw["per_channel"],
                       calibrate_method=kw["calib_method"],
                       keep_edges_float=kw["keep_edges_float"], optimize=kw["optimize"],
                       prelu_to_relu=kw["prelu_to_relu"],
                       verify=kw["verify"])
    report = _run(convert_model, source, output, options, weights)
    for line in format_report(report):
        click.echo(line)


def _output(out: Path | None, alias: Path | None) -> Path:
    """``--out`` (``-o``; the old ``--output`` still works), checked before any work."""
    from viewfinder.errors import InputFileError

    if out is not None and alias is not None and out != alias:
        raise ConfigError(f"--out {out} and --output {alias}: give one output file")
    target = out or alias
    if target is None:
        raise ConfigError("--out FILE is required (the converted model)")
    if target.is_dir():
        raise InputFileError(f"{target}: --out is a directory, expected a file name")
    if not (target.parent if str(target.parent) else Path(".")).is_dir():
        raise InputFileError(f"{target}: output directory {target.parent} does not exist")
    return target


def _source(model: str, weights: Path | None) -> tuple[Path, Path | None]:
    """MODEL through the one resolver (zoo names too); a zoo Darknet model brings its
    ``.weights`` (wherever the zoo found it) unless ``--weights`` is given."""
    from viewfinder.runtime import zoo

    path, spec = zoo.resolve_model(model)
    if weights is None and spec is not None and path.suffix.lower() == ".cfg":
        found = [p for p in zoo.resolve_files(spec.name).values() if p.suffix == ".weights"]
        weights = found[0] if found else None
    return path, weights


def _std(std: str | None, scale: str | None) -> tuple[float, ...] | None:
    if std is not None and scale is not None:
        raise ConfigError("--std and --scale: give one of them")
    if scale is not None:
        scales = _floats(scale, "scale")
        if any(s == 0 for s in scales):
            raise ConfigError(f"--scale {scale!r}: must not be 0")
        return tuple(1.0 / s for s in scales)
    return _floats(std, "std")


def _crop(value: str | None) -> tuple[int, ...] | None:
    crop = _floats(value, "crop", count=4)
    return None if crop is None else tuple(int(v) for v in crop)


def _run(convert_model: Callable[..., ConvertReport], model: Path, output: Path,
         options: ConvertOptions, weights: Path | None) -> ConvertReport:
    """Convert with a transient progress bar on stderr for int8 calibration."""
    from rich.console import Console
    from rich.progress import Progress

    quiet = options.precision != "int8"
    with Progress(console=Console(stderr=True), transient=True, disable=quiet) as bar:
        task = bar.add_task("calibrating", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        importer = _darknet_importer(weights) if model.suffix.lower() == ".cfg" else None
        loader = None if quiet else _yolo_calibration(model)  # quiet: no int8, no calibration
        return convert_model(model, output, options, importer=importer, progress=progress,
                             calibration_loader=loader)


def _yolo_calibration(model: Path) -> Callable[..., Any] | None:
    """For a Darknet/YOLO model: calibrate on letterboxed RGB 0..1, as it runs (else None)."""
    from viewfinder.detect.yolo_int8 import calibration_loader_for

    return calibration_loader_for(model)


def _darknet_importer(weights: Path | None) -> Callable[[Path, Path], Path]:
    """An importer exporting a Darknet ``.cfg`` (+ ``.weights``) to ONNX via viewfinder.detect."""
    from viewfinder.errors import InputFileError, MissingDependencyError, ModelError
    from viewfinder.fileio import check_readable

    def export(cfg: Path, out: Path) -> Path:
        check_readable(cfg, "Darknet cfg")
        found = weights or (cfg.with_suffix(".weights") if cfg.with_suffix(".weights").is_file()
                            else None)
        if found is None:
            raise InputFileError(f"{cfg}: Darknet weights needed (--weights FILE; none found "
                                 f"at {cfg.with_suffix('.weights')})")
        check_readable(found, "Darknet weights file")
        try:
            from viewfinder.detect.darknet_export import export_onnx

            export_onnx(cfg, found, out)
        except ModuleNotFoundError as exc:
            if exc.name == "torch":
                raise MissingDependencyError("torch", "train", "Darknet to ONNX export") from exc
            if exc.name and exc.name.startswith("viewfinder"):
                raise ModelError(f"{cfg}: Darknet export is not available in this build "
                                 f"({exc.name} missing)") from exc
            raise
        return out

    return export
