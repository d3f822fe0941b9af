"""Batch and spatial dimensions: fixed to dynamic and back, Reshape constants included.

Exporters often bake the batch size into the graph: the input says ``[1, 3, H, W]`` and
a ``Reshape`` flattens to a constant ``[1, -1]``. Making the input dynamic is then not
enough: the Reshape would fold a batch of 6 into one row. :func:`set_batch` makes the
input's batch symbolic, runs ONNX shape inference, and rewrites every constant Reshape
target whose first entry is the old batch while its data still carries the symbolic
batch (``1`` becomes ``0``, "copy this dimension"), repeating until inference no longer
loses the batch. :func:`check_batch_items` then proves it on data: a batch of distinct
random items must give the same outputs as the items one at a time.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from viewfinder.errors import BackendError, ModelError, ShapeError
from viewfinder.runtime.convert.modelio import initializer_names

__all__ = ["BATCH", "check_batch_items", "input_dims", "is_dynamic_batch", "random_feeds",
           "set_batch", "set_spatial"]

log = logging.getLogger(__name__)

BATCH = "batch"  # the symbolic name given to a dynamic batch dimension

Dim = int | str | None


def input_dims(info: onnx.ValueInfoProto) -> list[Dim]:
    """Dimensions of a graph input/output: ints, symbolic names, or None (unknown)."""
    out: list[Dim] = []
    for d in info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return out


def _set_dim(info: onnx.ValueInfoProto, axis: int, value: Dim) -> None:
    dim = info.type.tensor_type.shape.dim[axis]
    if isinstance(value, int):
        dim.dim_value = value
    else:
        dim.dim_param = value or "?"


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = initializer_names(model)
    return [i for i in model.graph.input if i.name not in inits]


def is_dynamic_batch(model: onnx.ModelProto) -> bool:
    """True when every real input's first dimension is symbolic or unknown."""
    inputs = _real_inputs(model)
    return bool(inputs) and all(
        input_dims(i) and not isinstance(input_dims(i)[0], int) for i in inputs
    )


def set_batch(model: onnx.ModelProto, batch: int | None) -> tuple[onnx.ModelProto, list[str]]:
    """Return a copy of ``model`` with batch ``batch`` (None: dynamic) and the changes made.

    Args:
        model: The model; every real input has its batch as dimension 0.
        batch: A fixed batch size, or None for a dynamic (symbolic) batch.

    Returns:
        The new model and one line per change (inputs, Reshape constants, outputs).

    Raises:
        ShapeError: ``batch`` is not positive, or an input has no dimensions.
    """
    if batch is not None and batch < 1:
        raise ShapeError(f"batch {batch}: expected a positive size or dynamic")
    out = copy.deepcopy(model)
    changes: list[str] = []
    old = _old_batch(out)
    if old is None and batch is None:
        return out, ["batch already dynamic"]
    for inp in _real_inputs(out):
        _set_dim(inp, 0, BATCH)
    out_before = {o.name: input_dims(o) for o in out.graph.output}
    _clear_shapes(out)
    if old is not None:
        changes += _fix_reshapes(out, old)
    inferred = _infer(out)
    for o in out.graph.output:
        _restore_output(o, out_before[o.name], inferred.get(o.name), old)
    if batch is not None:
        _pin_symbol(out, BATCH, batch)
    label = "dynamic" if batch is None else str(batch)
    changes.insert(0, f"batch {old if old is not None else 'dynamic'} -> {label}")
    return out, changes


def set_spatial(
    model: onnx.ModelProto, name: str, size: tuple[int, int] | None, layout: str = "NCHW"
) -> onnx.ModelProto:
    """Return a copy with input ``name``'s height and width fixed to ``size`` (w, h) or dynamic.

    Raises:
        ShapeError: the input is not 4-D.
    """
    out = copy.deepcopy(model)
    inp = next(i for i in out.graph.input if i.name == name)
    dims = input_dims(inp)
    if len(dims) != 4:
        raise ShapeError(f"model input {name!r}: expected 4 dims ({layout}), got {dims}")
    h_axis, w_axis = (2, 3) if layout == "NCHW" else (1, 2)
    if size is None:
        _set_dim(inp, h_axis, "height")
        _set_dim(inp, w_axis, "width")
    else:
        _set_dim(inp, w_axis, int(size[0]))
        _set_dim(inp, h_axis, int(size[1]))
    out_dims = {o.name: input_dims(o) for o in out.graph.output}
    _clear_shapes(out)
    inferred = _infer(out)
    for o in out.graph.output:
        _restore_output(o, out_dims[o.name], inferred.get(o.name), None)
    return out


def _old_batch(model: onnx.ModelProto) -> int | None:
    """The inputs' common fixed batch, or None when it is already dynamic."""
    inputs = _real_inputs(model)
    if not inputs or any(not input_dims(i) for i in inputs):
        raise ShapeError("model input has no dimensions: cannot change its batch")
    fixed = {input_dims(i)[0] for i in inputs} - {None}
    fixed = {f for f in fixed if isinstance(f, int)}
    return fixed.pop() if len(fixed) == 1 else None


def _clear_shapes(model: onnx.ModelProto) -> None:
    """Drop stale intermediate shapes and the outputs' dims (re-inferred afterwards)."""
    del model.graph.value_info[:]
    for o in model.graph.output:
        o.type.tensor_type.ClearField("shape")


def _infer(model: onnx.ModelProto) -> dict[str, list[Dim]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # inference is best effort: keep the previous shapes
        log.debug("shape inference failed: %s", exc)
        return {}
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    return {v.name: input_dims(v) for v in values if v.type.tensor_type.HasField("shape")}


def _restore_output(o: onnx.ValueInfoProto, before: list[Dim], inferred: list[Dim] | None,
                    old_batch: int | None) -> None:
    known = inferred is not None and len(inferred) == len(before)
    dims = [_known(d) for d in inferred] if known else list(before)
    if dims and old_batch is not None and before[0] == old_batch and dims[0] is None:
        dims[0] = BATCH
    shape = o.type.tensor_type.shape
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        elif d:
            dim.dim_param = d


def _known(dim: Dim) -> Dim:
    """None for the ``unk__N`` names shape inference invents, else ``dim``."""
    return None if isinstance(dim, str) and dim.startswith("unk__") else dim


def _constant_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arrays[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return arrays


def _fix_reshapes(model: onnx.ModelProto, old_batch: int) -> list[str]:
    """Rewrite constant Reshape targets that pin the old batch; repeat until stable."""
    changes: list[str] = []
    for _ in range(sum(n.op_type == "Reshape" for n in model.graph.node)):
        shapes = _infer(model)
        consts = _constant_arrays(model)
        fixed = [
            _rewrite_reshape(model, node, consts[node.input[1]])
            for node in model.graph.node
            if node.op_type == "Reshape" and node.input[1] in consts
            and _pins_batch(consts[node.input[1]], shapes.get(node.input[0]), old_batch)
        ]
        if not fixed:
            break
        changes += fixed
    return changes


def _pins_batch(target: np.ndarray, data_dims: list[Dim] | None, old_batch: int) -> bool:
    return (
        target.ndim == 1 and target.size > 0 and int(target[0]) == old_batch
        and bool(data_dims) and data_dims[0] == BATCH
    )


def _rewrite_reshape(model: onnx.ModelProto, node: onnx.NodeProto, target: np.ndarray) -> str:
    new = target.astype(np.int64).copy()
    new[0] = 0  # 0 = copy the input's dimension (needs allowzero=0, the default)
    for attr in node.attribute:
        if attr.name == "allowzero" and attr.i == 1:
            attr.i = 0
    name = f"{node.input[1]}__dynbatch_{len(model.graph.initializer)}"
    model.graph.initializer.append(numpy_helper.from_array(new, name))
    node.input[1] = name
    return f"Reshape {node.name or node.output[0]}: target {target.tolist()} -> {new.tolist()}"


def _pin_symbol(model: onnx.ModelProto, symbol: str, value: int) -> None:
    for info in list(model.graph.input) + list(model.graph.output):
        for d in info.type.tensor_type.shape.dim:
            if d.dim_param == symbol:
                d.dim_value = value


def random_feeds(inputs: Sequence, batch: int, spatial: int = 64,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for session inputs (``TensorInfo``): batch ``batch``, unknown dims ``spatial``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in inputs:
        shape = [batch] + [d if isinstance(d, int) and d > 0 else spatial for d in info.shape[1:]]
        if np.issubdtype(info.dtype, np.integer):
            feeds[info.name] = rng.integers(0, 256, size=shape).astype(info.dtype)
        else:
            feeds[info.name] = rng.uniform(0, 255, size=shape).astype(info.dtype)
    return feeds


def check_batch_items(path: str, batch: int = 3, spatial: int = 64, rtol: float = 1e-4) -> float:
    """Run a batch of distinct random items and each item alone; return the max difference.

    Raises:
        ModelError: a batched output differs from the per-item output (the graph still
            mixes items, e.g. through a hard-coded batch the rewrite did not catch).
    """
    from viewfinder.runtime.session import load_session

    sess = load_session(path)
    feeds = random_feeds(sess.inputs, batch, spatial)
    try:
        together = sess.run(feeds)
    except BackendError as exc:
        raise ModelError(f"{path}: a batch of {batch} fails to run, the graph still pins the "
                         f"batch ({exc})") from exc
    worst = 0.0
    for k in range(batch):
        alone = sess.run({n: a[k:k + 1] for n, a in feeds.items()})
        for out_b, out_1, info in zip(together, alone, sess.outputs, strict=True):
            if out_b.shape[0] != batch or out_b[k:k + 1].shape != out_1.shape:
                raise ModelError(
                    f"{path}: output {info.name!r} has shape {out_b.shape} for a batch of "
                    f"{batch}, expected ({batch}, ...) matching {out_1.shape} per item"
                )
            diff = float(np.max(np.abs(out_b[k:k + 1].astype(np.float64) - out_1)))
            scale = float(np.max(np.abs(out_1))) or 1.0
            if diff > rtol * max(scale, 1.0):
                raise ModelError(f"{path}: output {info.name!r} of item {k} differs by "
                                 f"{diff:.3g} in a batch of {batch}: batch dim not separable")
            worst = max(worst, diff)
    return worst
