"""``viewfinder serve``: faces, YOLO and DPM over HTTP (FastAPI + uvicorn, the ``serve`` extra).

    >>> from viewfinder.serve.server import serve
    >>> from viewfinder.tasks import TaskSpec
    >>> serve([TaskSpec("faces")], port=8000)      # until SIGTERM; returns 0

:func:`viewfinder.serve.app.create_app` builds the ASGI application for another
server; :class:`viewfinder.serve.config.ServeConfig` holds the batching and limits.
Importing this package imports neither FastAPI nor uvicorn; see docs/serve.md.
"""

__all__: list[str] = []
