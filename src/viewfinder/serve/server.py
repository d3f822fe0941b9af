"""Run the service under uvicorn, with a graceful SIGTERM: stop accepting, finish what
is in flight (at most ``drain_seconds``), stop the batchers, exit 0."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from viewfinder.errors import ConfigError, MissingDependencyError
from viewfinder.tasks import TaskSpec

__all__ = ["serve"]

log = logging.getLogger(__name__)


def _require() -> Any:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "serve",
                                     "viewfinder serve") from None
    return uvicorn


def serve(specs: Sequence[TaskSpec], *, host: str = "127.0.0.1", port: int = 8000,
          access_log: bool = False, **config: Any) -> int:
    """Load the tasks, serve them until SIGTERM or SIGINT, and return 0.

    Args:
        specs: The tasks (see :class:`viewfinder.tasks.TaskSpec`).
        host, port: Where to listen.
        access_log: Log every request.
        config: :class:`viewfinder.serve.config.ServeConfig` fields (``max_batch``...).
            ``max_pixels`` also sets ``VIEWFINDER_MAX_PIXELS`` in this process, so the
            decoder enforces the same cap.

    Raises:
        ViewfinderError: a model failed to load (its own error), or the address is taken.
    """
    uvicorn = _require()
    from viewfinder.media.limits import MAX_PIXELS_ENV
    from viewfinder.serve.app import create_app
    from viewfinder.serve.config import ServeConfig
    from viewfinder.serve.service import Service

    cfg = ServeConfig(tuple(specs), **config)
    if cfg.max_pixels is not None:
        os.environ[MAX_PIXELS_ENV] = str(cfg.max_pixels)
    service = Service(cfg)
    app = create_app(service=service)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=access_log, lifespan="on",
        timeout_graceful_shutdown=max(1, round(cfg.drain_seconds)), server_header=False))

    def fatal(_message: str) -> None:
        server.should_exit = True

    service.on_fatal = fatal
    # The event loop hands the GIL back and forth with the batch worker and the decoder;
    # at Python's default 5 ms switch interval a 503's p99 was 121 ms at 2x capacity,
    # at 2 ms 21 ms (at 1 ms no better, and throughput fell; benchmarks/serve.py).
    sys.setswitchinterval(0.002)
    # uvicorn drains on SIGTERM/SIGINT and then raises the signal again for the handler
    # that was there before it; a no-op one makes the process exit 0 after the drain.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind
        raise ConfigError(f"serve: cannot listen on {host}:{port} (in use, or not an "
                          "address of this host)") from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if service.exception is not None:
        raise service.exception
    return 0
