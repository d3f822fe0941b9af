"""``viewfinder serve``: faces, YOLO and DPM over HTTP (FastAPI + uvicorn, the ``serve`` extra).

Argument parsing over :mod:`viewfinder.serve`; fastapi and uvicorn are imported
only when the command runs, so ``viewfinder --help`` does not load them.
"""

from __future__ import annotations

import click

from viewfinder.cli._shared import runtime_options

TASK_NAMES = ("faces", "detect", "dpm")


def _models(tasks: tuple[str, ...], models: tuple[str, ...]) -> dict[str, object]:
    """``--model`` values by task: ``TASK=NAME`` or, with one task, a bare NAME
    (DPM takes several: ``dpm=VOC2007_person,VOC2007_car``)."""
    out: dict[str, object] = {}
    for text in models:
        task, sep, name = text.partition("=")
        if not sep:
            if len(tasks) != 1:
                raise click.BadParameter(f"{text!r}: with several tasks, say which: "
                                         "TASK=MODEL", param_hint="--model")
            task, name = tasks[0], text
        if task not in tasks:
            raise click.BadParameter(f"{text!r}: task {task!r} is not served (--task)",
                                     param_hint="--model")
        out[task] = tuple(name.split(",")) if task == "dpm" else name
    return out


@click.command("serve")
@click.option("--task", "tasks", type=click.Choice(TASK_NAMES), multiple=True,
              help="Task to serve (repeat for several; default: faces).")
@click.option("--model", "models", multiple=True, metavar="[TASK=]MODEL",
              help="Zoo name or file per task (default: the task's default model).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--score", type=float, help="Default score threshold (requests may override).")
@click.option("--landmarks", type=click.Choice(["106", "none"]), default="106",
              show_default=True, help="Faces: load 2d106det for 106 landmarks, or not.")
@runtime_options()
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Most images in one model call (across requests).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Longest wait for more images after the oldest queued one.")
@click.option("--queue-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images that may wait per task; past it: 503 with Retry-After.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=32.0,
              show_default=True, help="Request body cap (413 past it).")
@click.option("--max-pixels", type=click.IntRange(min=1),
              help="Pixel cap per image, checked from its header (default: "
                   "VIEWFINDER_MAX_PIXELS or 134217728).")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="On SIGTERM: seconds for requests in flight to finish.")
@click.option("--batch-delay-ms", type=click.FloatRange(min=0), default=0.0, hidden=True,
              help="Extra time per batch (tests of back-pressure).")
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
def cli(tasks: tuple[str, ...], models: tuple[str, ...], host: str, port: int,
        score: float | None, landmarks: str, backend: str, provider: str, threads: int, precision: str,
        max_batch: int, max_wait_ms: float, queue_size: int, max_body_mb: float,
        max_pixels: int | None, drain_timeout: float, batch_delay_ms: float,
        access_log: bool) -> int:
    """Serve TASKs over HTTP: POST an image to /v1/<task>, get the JSON record the
    CLI writes (or draw=true: the annotated JPEG).

    Models load and warm once at start (/readyz is 503 until then). Requests are
    batched across clients; a full queue answers 503 at once. The page at / takes a
    dropped image or the webcam; API docs at /docs; metrics at /metrics. SIGTERM
    stops accepting, finishes what is in flight and exits 0.
    """
    tasks = tasks or ("faces",)
    by_task = _models(tasks, models)
    from viewfinder.serve.server import serve
    from viewfinder.tasks import TaskSpec

    runtime = {"backend": backend, "provider": provider, "threads": threads,
               "precision": precision}
    specs = []
    for name in dict.fromkeys(tasks):
        opts = {"threads": threads} if name == "dpm" else dict(runtime)
        if score is not None:
            opts["score"] = score
        if name == "faces" and landmarks == "none":
            opts["landmarks"] = None
        specs.append(TaskSpec(name, by_task.get(name), opts))
    return serve(specs, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms,
                 queue_size=queue_size, max_body=int(max_body_mb * (1 << 20)),
                 max_pixels=max_pixels, drain_seconds=drain_timeout,
                 batch_delay_ms=batch_delay_ms, access_log=access_log)
