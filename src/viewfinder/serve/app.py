"""The HTTP service on FastAPI: routes, error answers, the page and the WebSocket.

=========================  ===========================================================
``POST /v1/<task>``        one image (raw body) or several (multipart files); options
                           as query parameters; the JSON record(s) the CLI writes, or
                           ``draw=true``: the annotated JPEG
``WS /v1/<task>/ws``       binary messages of encoded frames in, one JSON record out each
``GET /livez``             200 while the process runs
``GET /readyz``            503 until the models are warm, then what runs them
``GET /metrics``           Prometheus text format
``GET /``                  the page: drop an image, or the webcam live
``GET /docs``              OpenAPI docs
=========================  ===========================================================

Every refusal is a JSON ``{"error": "<one line>"}`` with its status: 400 (bad
image, bad option), 404 (task not served), 413 (body or pixel cap), 503 with
``Retry-After`` (queue full, not ready); an unexpected failure is a 500 with one
line too, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from viewfinder.errors import ViewfinderError
from viewfinder.serve.batcher import QueueFullError
from viewfinder.serve.config import ServeConfig
from viewfinder.serve.service import Service
from viewfinder.serve.uploads import Part, RequestError, decode_part, read_body, split_parts

__all__ = ["create_app"]

log = logging.getLogger(__name__)

OPTIONS = {"faces": ("score", "max_faces", "landmarks", "draw"),
           "detect": ("score", "draw"), "dpm": ("score", "draw")}
_BODY = {"requestBody": {"required": True, "content": {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {
        "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}
_JSON = {"separators": (",", ":")}


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _record_of(part: Part, image: Any, result: Any) -> dict[str, Any]:
    from viewfinder.media.sources import Origin
    from viewfinder.sinks import make_record

    h, w = image.shape[:2]
    return make_record(Origin("http", part.name, None, None, None, w, h), result)


class _Handler:
    """What every task route does, on one :class:`Service`.

    Images are decoded in one thread at a time (``decoders``): eight decodes at once
    beside the model's own threads on two cores slowed the model more than they gained
    (as the offline runner, which decodes ahead in one thread).
    """

    def __init__(self, service: Service, decoders: int = 1) -> None:
        self.service = service
        self.decoders = decoders
        self._limiter: Any = None

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, at most :attr:`decoders` at once."""
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.decoders)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def refuse(self, task: str, exc: RequestError) -> JSONResponse:
        self.service.metrics.reject(task, exc.reason)
        self.service.metrics.request(task, exc.status)
        retry = self.service.config.retry_after if exc.status == 503 else None
        return _error(exc.status, exc.message, retry)

    def served(self, task: str) -> Any:
        if not self.service.ready.is_set():
            raise RequestError(503, "models are loading; try again shortly", "not_ready")
        return self.service.served[task]

    def room(self, served: Any, n: int) -> None:
        if served.batcher.room() < n:
            b = served.batcher
            raise RequestError(503, f"{served.name}: queue full ({b.depth} of "
                                    f"{b.queue_size} images waiting); retry later",
                               "queue_full")

    async def images(self, request: Request, served: Any) -> tuple[list[Part], list[Any]]:
        cfg = self.service.config
        parts = await split_parts(request, await read_body(request, cfg.max_body))
        if len(parts) > cfg.queue_size:
            raise RequestError(413, f"{len(parts)} images in one request; at most "
                                    f"{cfg.queue_size} (the queue size)", "body_too_large")
        self.room(served, len(parts))  # before decoding: a full queue answers at once
        limit = self.service.max_pixels()

        def decode() -> list[Any]:
            return [decode_part(p, i, limit) for i, p in enumerate(parts)]

        return parts, await self.in_thread(decode)

    async def run(self, served: Any, images: list[Any], options: dict[str, Any]) -> list[Any]:
        try:
            futures = served.batcher.submit(images, options)
        except QueueFullError as exc:
            raise RequestError(503, f"{exc}; retry later", "queue_full") from None
        try:
            return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
        except QueueFullError as exc:
            raise RequestError(503, f"{exc}; retry later", "queue_full") from None
        except ViewfinderError as exc:
            raise RequestError(400, str(exc), "bad_image") from None
        except Exception as exc:  # noqa: BLE001 - one line to the client, the traceback logged
            log.error("serve: %s failed", served.name, exc_info=exc)
            raise RequestError(500, f"internal error ({type(exc).__name__}); see the server "
                                    "log", "internal") from None

    async def __call__(self, task: str, request: Request, options: dict[str, Any],
                       draw: bool) -> Response:
        t0 = time.perf_counter()
        try:
            extra = sorted(set(request.query_params) - set(OPTIONS[task]))
            if extra:
                raise RequestError(400, f"unknown option {extra[0]!r} for {task}; expected "
                                        f"{', '.join(OPTIONS[task])}")
            served = self.served(task)
            self.room(served, 1)  # a full queue answers before the body is read
            parts, images = await self.images(request, served)
            if draw and len(images) != 1:
                raise RequestError(400, f"draw=true: expected one image, got {len(images)}")
            results = await self.run(served, images, options)
        except RequestError as exc:
            return self.refuse(task, exc)
        if draw:
            body = await self.in_thread(_annotate, images[0], results[0])
            response: Response = Response(body, media_type="image/jpeg",
                                          headers={"X-Detections": str(len(results[0]))})
        else:
            records = [_record_of(p, im, r) for p, im, r in zip(parts, images, results,
                                                                 strict=True)]
            body = records[0] if len(records) == 1 and not _is_form(request) else \
                {"records": records}
            response = Response(json.dumps(body, **_JSON), media_type="application/json")
        self.service.metrics.request(task, 200, time.perf_counter() - t0)
        return response


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


def _annotate(image: Any, result: Any) -> bytes:
    from viewfinder.media.image import encode_jpeg

    return encode_jpeg(result.draw(image), quality=90)


def _validation_message(exc: RequestValidationError) -> str:
    err = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
    value = err.get("input")
    shown = f"={value!r}" if isinstance(value, str | int | float) else ""
    return f"{where}{shown}: {err.get('msg', 'invalid')}"


def _add_task_routes(app: FastAPI, handle: _Handler, served: list[str]) -> None:
    score_unit = Query(None, ge=0.0, le=1.0, description="Score threshold (0..1).")
    draw_q = Query(False, description="Answer with the annotated JPEG instead of JSON.")
    if "faces" in served:
        @app.post("/v1/faces", tags=["tasks"], openapi_extra=_BODY,
                  summary="Faces: boxes, 5 keypoints, 106 landmarks")
        async def faces(request: Request, score: float | None = score_unit,
                        max_faces: int | None = Query(None, ge=0, description="Keep the best N."),
                        landmarks: bool | None = Query(None, description="106 landmarks."),
                        draw: bool = draw_q) -> Response:
            return await handle("faces", request, {"score": score, "max_faces": max_faces,
                                                    "landmarks": landmarks}, draw)
    if "detect" in served:
        @app.post("/v1/detect", tags=["tasks"], openapi_extra=_BODY,
                  summary="YOLO: class-labelled boxes")
        async def detect(request: Request, score: float | None = score_unit,
                         draw: bool = draw_q) -> Response:
            return await handle("detect", request, {"score": score}, draw)
    if "dpm" in served:
        @app.post("/v1/dpm", tags=["tasks"], openapi_extra=_BODY,
                  summary="Deformable Part Models: boxes with parts")
        async def dpm(request: Request, score: float | None = Query(
                          None, description="SVM score threshold (may be negative)."),
                      draw: bool = draw_q) -> Response:
            return await handle("dpm", request, {"score": score}, draw)

    @app.post("/v1/{task}", include_in_schema=False)
    async def unknown(task: str) -> Response:
        return _error(404, f"task {task!r} is not served here; served: {', '.join(served)}")


def _add_health_routes(app: FastAPI, service: Service) -> None:
    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        status, body = service.readiness()
        headers = {"Retry-After": str(service.config.retry_after)} if status == 503 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return PlainTextResponse(service.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    page = Path(__file__).with_name("page.html")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page.read_text(encoding="utf-8"))


def _ws_options(task: str, query: Any) -> dict[str, Any]:
    allowed = set(OPTIONS[task]) - {"draw"}
    extra = sorted(set(query) - allowed)
    if extra:
        raise RequestError(400, f"unknown option {extra[0]!r}; expected {', '.join(allowed)}")
    out: dict[str, Any] = {}
    try:
        if "score" in query:
            out["score"] = float(query["score"])
        if "max_faces" in query:
            out["max_faces"] = int(query["max_faces"])
    except ValueError as exc:
        raise RequestError(400, f"bad option value: {exc}") from None
    if "landmarks" in query:
        out["landmarks"] = query["landmarks"].lower() in ("1", "true", "yes", "on")
    return out


def _add_websocket(app: FastAPI, handle: _Handler) -> None:
    @app.websocket("/v1/{task}/ws")
    async def stream(websocket: WebSocket, task: str) -> None:
        await websocket.accept()
        try:
            if task not in handle.service.names:
                raise RequestError(404, f"task {task!r} is not served here")
            options = _ws_options(task, websocket.query_params)
        except RequestError as exc:
            await websocket.send_json({"error": exc.message, "status": exc.status})
            await websocket.close(code=1008)
            return
        try:
            while True:
                data = await websocket.receive_bytes()
                await websocket.send_text(await _ws_frame(handle, task, data, options))
        except WebSocketDisconnect:
            return


async def _ws_frame(handle: _Handler, task: str, data: bytes, options: dict[str, Any]) -> str:
    t0 = time.perf_counter()
    part = Part("frame", data)
    try:
        served = handle.served(task)
        handle.room(served, 1)
        limit = handle.service.max_pixels()
        image = await handle.in_thread(decode_part, part, 0, limit)
        result = (await handle.run(served, [image], options))[0]
    except RequestError as exc:
        handle.service.metrics.reject(task, exc.reason)
        return json.dumps({"error": exc.message, "status": exc.status})
    record = _record_of(part, image, result)
    record["server_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
    return json.dumps(record, **_JSON)


def create_app(config: ServeConfig | None = None, *, service: Service | None = None) -> FastAPI:
    """The FastAPI application of one service.

    Args:
        config: What to serve (default: faces with the default models).
        service: A prepared :class:`Service` (tests); built from ``config`` otherwise.
            Its models are loaded in the background at start-up.
    """
    service = service or Service(config or ServeConfig())
    handle = _Handler(service)

    async def lifespan(app: FastAPI) -> Any:
        if not service.ready.is_set() and service._thread is None:
            service.start(background=True)
        yield
        await run_in_threadpool(service.stop)

    from viewfinder import __version__

    app = FastAPI(title="viewfinder", version=__version__, lifespan=lifespan,
                  description="Faces, YOLO and DPM over HTTP, batched across requests.")
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        task = request.url.path.rsplit("/", 1)[-1]
        service.metrics.reject(task, "bad_request")
        service.metrics.request(task, 400)
        return _error(400, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("serve: %s %s failed", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    _add_task_routes(app, handle, service.names)
    _add_health_routes(app, service)
    _add_websocket(app, handle)
    return app
