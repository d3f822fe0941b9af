"""What a conversion changed: inputs and outputs before and after, sizes, ops added."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx
from onnx import helper

from viewfinder.runtime.convert.modelio import initializer_names
from viewfinder.runtime.convert.quantize import OutputDiff
from viewfinder.runtime.convert.shapes import input_dims

__all__ = ["ConvertReport", "ModelSummary", "format_report", "summarize"]


@dataclass(frozen=True)
class ModelSummary:
    """Inputs, outputs (``name dtype [dims]`` strings), op counts and file size of a model."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: dict[str, int]
    size_bytes: int


@dataclass(frozen=True)
class ConvertReport:
    """The result of :func:`viewfinder.runtime.convert.convert_model`.

    Attributes:
        source: The model converted (a Darknet cfg is exported to ONNX first).
        output: The file written, named exactly as asked.
        before: The source model.
        after: The written model.
        changes: One line per change made (batch, Reshapes, preprocessing, precision).
        verify_diff: Max |difference| of the outputs against NumPy preprocessing + the
            original model on a random input (None when not verified).
        precision_diffs: int8 outputs against float32 on the calibration inputs.
        precision: ``"f32"``, ``"fp16"`` or ``"int8"``.
    """

    source: str
    output: str
    before: ModelSummary
    after: ModelSummary
    changes: tuple[str, ...] = ()
    verify_diff: float | None = None
    precision_diffs: tuple[OutputDiff, ...] = field(default_factory=tuple)
    precision: str = "f32"

    @property
    def ops_added(self) -> dict[str, int]:
        """Op types whose count grew, with how many more."""
        return dict(Counter(self.after.ops) - Counter(self.before.ops))

    @property
    def ops_removed(self) -> dict[str, int]:
        """Op types whose count shrank, with how many fewer."""
        return dict(Counter(self.before.ops) - Counter(self.after.ops))


def _describe(info: onnx.ValueInfoProto) -> str:
    elem = info.type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(elem).name if elem else "?"
    dims = ", ".join("?" if d is None else str(d) for d in input_dims(info))
    return f"{info.name} {dtype} [{dims}]"


def summarize(model: onnx.ModelProto, size_bytes: int) -> ModelSummary:
    """Summarize a model (``size_bytes``: its file size)."""
    inits = initializer_names(model)
    return ModelSummary(
        inputs=tuple(_describe(i) for i in model.graph.input if i.name not in inits),
        outputs=tuple(_describe(o) for o in model.graph.output),
        ops=dict(Counter(n.op_type for n in model.graph.node)),
        size_bytes=size_bytes,
    )


def _ops(counts: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"


def format_report(report: ConvertReport) -> list[str]:
    """The lines ``viewfinder convert`` prints."""
    b, a = report.before, report.after
    lines = [f"converted {report.source} -> {report.output}"]
    for label, old, new in (("inputs", b.inputs, a.inputs), ("outputs", b.outputs, a.outputs)):
        lines.append(f"{label}:")
        for k in range(max(len(old), len(new))):
            was = old[k] if k < len(old) else "-"
            now = new[k] if k < len(new) else "-"
            lines.append(f"  {was}  ->  {now}" if was != now else f"  {was}  (unchanged)")
    ratio = a.size_bytes / b.size_bytes if b.size_bytes else float("nan")
    lines.append(f"size: {b.size_bytes:,} B -> {a.size_bytes:,} B ({ratio:.2f}x)")
    lines.append(f"nodes: {sum(b.ops.values())} -> {sum(a.ops.values())}; "
                 f"ops added: {_ops(report.ops_added)}")
    if report.ops_removed:
        lines.append(f"ops removed: {_ops(report.ops_removed)}")
    lines += [f"change: {c}" for c in report.changes]
    inexact = any(c.startswith("inexact") for c in report.changes)
    if report.verify_diff is not None and report.precision == "f32" and not inexact:
        lines.append(f"verified against NumPy preprocessing + original model: "
                     f"max |diff| {report.verify_diff:.3g}")
    elif report.verify_diff is not None:
        lines.append(f"{report.precision}{' (inexact rewrite)' if inexact else ''} against "
                     "NumPy preprocessing + original f32 model on a random input: "
                     f"max |diff| {report.verify_diff:.3g}")
    lines += [f"precision diff {d}" for d in report.precision_diffs]
    return lines
