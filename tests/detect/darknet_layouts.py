"""The layer layouts of the published YOLOv3, YOLOv3-tiny-style and YOLOv4-tiny cfgs,
written out programmatically for tests (the real files are not all in shared/)."""

from __future__ import annotations

NET = "[net]\nwidth=416\nheight=416\nchannels=3\n"


def conv(f: int, s: int = 3, st: int = 1, act: str = "leaky", bn: int = 1) -> str:
    return (f"[convolutional]\nbatch_normalize={bn}\nfilters={f}\nsize={s}\nstride={st}\n"
            f"pad=1\nactivation={act}\n")


def _res(f: int, n: int) -> str:
    return (conv(f // 2, 1) + conv(f) + "[shortcut]\nfrom=-3\nactivation=linear\n") * n


def _head(f: int) -> str:
    return (conv(f, 1) + conv(2 * f)) * 3 + conv(255, 1, 1, "linear", 0)


def yolov3() -> str:
    """Darknet-53 backbone (shortcuts) and three heads: 107 layers."""
    a = ("anchors = 10,13,  16,30,  33,23,  30,61,  62,45,  59,119,  116,90,  156,198,  "
         "373,326\nclasses=80\nnum=9\n")
    return (NET + conv(32) + conv(64, 3, 2) + _res(64, 1) + conv(128, 3, 2) + _res(128, 2)
            + conv(256, 3, 2) + _res(256, 8) + conv(512, 3, 2) + _res(512, 8)
            + conv(1024, 3, 2) + _res(1024, 4) + _head(512) + "[yolo]\nmask = 6,7,8\n" + a
            + "[route]\nlayers = -4\n" + conv(256, 1) + "[upsample]\nstride=2\n"
            + "[route]\nlayers = -1, 61\n" + _head(256) + "[yolo]\nmask = 3,4,5\n" + a
            + "[route]\nlayers = -4\n" + conv(128, 1) + "[upsample]\nstride=2\n"
            + "[route]\nlayers = -1, 36\n" + _head(128) + "[yolo]\nmask = 0,1,2\n" + a)


def _csp(f: int) -> str:
    return (conv(f) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + conv(f // 2) + conv(f // 2)
            + "[route]\nlayers=-1,-2\n" + conv(f, 1) + "[route]\nlayers=-6,-1\n"
            + "[maxpool]\nsize=2\nstride=2\n")


def yolov4_tiny() -> str:
    """CSP blocks with route groups/group_id, scale_x_y: 38 layers."""
    a = ("anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319\nclasses=80\nnum=6\n"
         "scale_x_y = 1.05\n")
    return (NET + conv(32, 3, 2) + conv(64, 3, 2) + _csp(64) + _csp(128) + _csp(256)
            + conv(512) + conv(256, 1) + conv(512) + conv(255, 1, 1, "linear", 0)
            + "[yolo]\nmask = 3,4,5\n" + a + "[route]\nlayers = -4\n" + conv(128, 1)
            + "[upsample]\nstride=2\n" + "[route]\nlayers = -1, 23\n" + conv(256)
            + conv(255, 1, 1, "linear", 0) + "[yolo]\nmask = 1,2,3\n" + a)
