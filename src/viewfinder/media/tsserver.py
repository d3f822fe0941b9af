"""A live MPEG-TS stream over TCP on loopback, for trying and testing live sources.

``python -m viewfinder.media.tsserver clip.ts --port 9000 --fps 25 --loop`` serves the
file to every client that connects to ``tcp://127.0.0.1:9000``, paced like a camera
(each frame's share of the bytes at its time), from the start for each client, looping
if asked. :func:`encode_ts` makes such a file (H.264, short GOP, so that a client that
joins or reconnects gets a picture soon) from any video.

The server is a plain socket server that sends FFmpeg's real bytes: clients decode them
with FFmpeg as they would a network camera's.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

from viewfinder.errors import ConfigError

__all__ = ["encode_ts", "serve"]

log = logging.getLogger(__name__)

_PACKET = 188


def encode_ts(source: str | os.PathLike[str], out: str | os.PathLike[str], *,
              size: tuple[int, int] | None = None, fps: float = 25.0,
              frames: int | None = None, gop: int = 10) -> int:
    """Re-encode a video (or the first ``frames`` of it) to an H.264 MPEG-TS file.

    Args:
        source: Any video FFmpeg reads.
        out: The ``.ts`` file to write.
        size: Output ``(width, height)`` (even), or None for the source's.
        fps: Frame rate of the output.
        frames: At most this many frames.
        gop: Frames between key frames.

    Returns:
        The number of frames written.
    """
    import av
    import cv2

    from viewfinder.media.video import VideoReader

    count = 0
    with av.open(str(out), "w", format="mpegts") as container:
        stream = None
        for frame in VideoReader(source, fmt="bgr24", max_frames=frames):
            image = frame.image if size is None else cv2.resize(frame.image, size)
            if stream is None:
                stream = container.add_stream("libx264", rate=round(fps))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"g": str(gop), "bf": "0", "preset": "veryfast",
                                  "tune": "zerolatency"}
            av_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            av_frame.pts = count
            container.mux(stream.encode(av_frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return count


def _send(conn: socket.socket, data: bytes, frames: int, fps: float, loop: bool,
          stop: threading.Event) -> None:
    """Pace ``data`` (``frames`` frames) at ``fps``: frame ``k``'s share of bytes at k/fps."""
    per_frame = max(_PACKET, (len(data) // max(frames, 1)) // _PACKET * _PACKET)
    t0 = time.monotonic()
    sent = 0
    while not stop.is_set():
        for pos in range(0, len(data), per_frame):
            due = t0 + sent / fps
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            conn.sendall(data[pos:pos + per_frame])
            sent += 1
        if not loop:
            return


def serve(path: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0,
          fps: float = 25.0, frames: int | None = None, loop: bool = False,
          stop: threading.Event | None = None, ready: threading.Event | None = None,
          bound: list[int] | None = None) -> None:
    """Serve ``path`` to every client until ``stop`` is set (or forever).

    Args:
        path: An MPEG-TS file.
        host, port: Where to listen (port 0: any free port, reported in ``bound``).
        fps: Pace of the stream; ``frames`` its frame count (default: from the file).
        loop: Start again at the end instead of closing the connection.
        stop, ready: Events to stop the server / say it is listening.
        bound: A list the listening port is appended to.
    """
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ConfigError(f"host {host}: this test server listens on loopback only")
    data = Path(path).read_bytes()
    if frames is None:
        from viewfinder.media.video import probe

        frames = probe(path).frames
    stop = stop or threading.Event()
    server = socket.create_server((host, port), reuse_port=False)
    server.settimeout(0.2)
    if bound is not None:
        bound.append(server.getsockname()[1])
    if ready is not None:
        ready.set()

    def client(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # OSError: the client went away
            _send(conn, data, frames, fps, loop, stop)

    try:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=client, args=(conn,), daemon=True).start()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m viewfinder.media.tsserver FILE.ts --port P [--fps F] [--loop]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--loop", action="store_true")
    args = parser.parse_args(argv)
    serve(args.path, args.host, args.port, args.fps, loop=args.loop)


if __name__ == "__main__":  # pragma: no cover
    main()
