"""MediaPipe FaceMesh (``mediapipe`` 0.10.21, legacy ``solutions.face_mesh``) as a video peer.

mediapipe 0.10.21 pins protobuf < 5; this environment has a newer protobuf (ONNX and
Ray want it), where two things it calls are gone: ``MessageFactory.GetPrototype`` (its
C++ packet getters call it) and ``FieldDescriptor.label`` (read when it sets calculator
options). :func:`patch` puts both back in this process, for the benchmark only, without
touching the installed packages.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import cv2

__all__ = ["FaceMeshPeer", "patch"]

_PATCHED = False


def patch() -> None:
    """Make mediapipe 0.10.21's legacy solutions run on protobuf >= 5 (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (
            lambda self, desc: message_factory.GetMessageClass(desc))
    from mediapipe.python import solution_base as sb

    src = textwrap.dedent(inspect.getsource(sb.SolutionBase._modify_calculator_options))
    fixed = re.sub(r"field_label = calculator_options\.DESCRIPTOR\.fields_by_name\[\s*"
                   r"field_name\]\.label\s*\n\s*if field_label == "
                   r"descriptor\.FieldDescriptor\.LABEL_REPEATED:",
                   "if calculator_options.DESCRIPTOR.fields_by_name[field_name].is_repeated:",
                   src)
    if fixed != src:
        scope: dict[str, object] = {}
        exec(compile(fixed, sb.__file__, "exec"), sb.__dict__, scope)  # noqa: S102
        sb.SolutionBase._modify_calculator_options = scope["_modify_calculator_options"]
    _PATCHED = True


class FaceMeshPeer:
    """FaceMesh over a video, frame by frame (tracking mode, its defaults otherwise).

    Args:
        max_faces: ``max_num_faces`` (with fewer faces tracked, FaceMesh runs its
            detector on every frame).
    """

    def __init__(self, max_faces: int) -> None:
        patch()
        import mediapipe as mp

        self.max_faces = max_faces
        self._mp = mp

    def run(self, path: Path, reader: type) -> tuple[int, int]:
        """``(frames, faces)`` over the video at ``path`` decoded by ``reader``."""
        mesh = self._mp.solutions.face_mesh.FaceMesh(static_image_mode=False,
                                                     max_num_faces=self.max_faces)
        frames = faces = 0
        try:
            for frame in reader(path):
                got = mesh.process(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB))
                frames += 1
                faces += len(got.multi_face_landmarks or [])
        finally:
            mesh.close()
        return frames, faces

