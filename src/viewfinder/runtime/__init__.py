"""Model runtime: backends (ONNX Runtime, OpenVINO), sessions, model specs and zoo, bench.

Import what you need from the submodules; this package imports nothing heavy at
import time.

- :func:`viewfinder.runtime.session.load_session`: the one entry point (backend,
  provider/device, precision, threads, warm-up; ``backend="auto"`` measures).
- :mod:`viewfinder.runtime.zoo`: ``list_models``, ``get_model``, ``resolve``, and
  ``resolve_model(arg, task=None) -> (Path, ModelSpec | None)``, the one "zoo name or
  path" resolver (integrity errors are never swallowed).
- :mod:`viewfinder.runtime.specs`: ``ModelSpec``, ``FileSpec``, ``InputSpec``
  (``spec.preprocess()``), the precision vocabulary (``PRECISIONS``,
  ``normalize_precision``).
- :mod:`viewfinder.runtime.preprocess`: image to tensor as a spec declares.
- :mod:`viewfinder.runtime.bench`, :mod:`viewfinder.runtime.bench_io`: the benchmark.
- :mod:`viewfinder.runtime.threads`: the process-wide thread budget.
"""
