"""The manifest of the model zoo: every model viewfinder uses, with provenance.

Sizes and first digests are those of the copies in ``shared/SHA256SUMS`` (the files
the project is tested with). Further digests are upstream copies of the same
network and I/O (noted per entry). ``scrfd_10g`` is not in ``shared``: its digest
and size are those of InsightFace's antelopev2 ``scrfd_10g_bnkps.onnx`` (identical to
buffalo_l's ``det_10g.onnx``), as published by several projects; not re-verified here.
"""

from __future__ import annotations

from viewfinder.runtime.specs import FileSpec, InputSpec, ModelSpec

__all__ = ["SPECS"]

_INSIGHTFACE = "InsightFace weights: non-commercial research only"
_HF_ANTELOPE = "https://huggingface.co/DIAMONIK7777/antelopev2/resolve/main"
_IF_RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_PJREDDIE = "https://pjreddie.com/media/files"
_DARKNET_RAW = "https://raw.githubusercontent.com/pjreddie/darknet/master"
_VOC5_URL = "https://people.cs.uchicago.edu/~rbg/latent/voc-release5.tgz"

_SCRFD_INPUT = InputSpec(
    name="input.1", size=None, default_size=(640, 640), color="RGB",
    mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0), multiple=32, resize="letterbox",
)
_SCRFD_OUT = ("per stride 8/16/32: score [N,A,1], bbox [N,A,4] (distances x stride), "
              "kps [N,A,10]; 2 anchors per cell; match by last dim")


def _scrfd() -> list[ModelSpec]:
    return [
        ModelSpec(
            "scrfd_500m", "face-detection",
            (FileSpec("scrfd_500m_bnkps.onnx", "face", f"{_IF_RELEASE}/buffalo_sc.zip",
                      ("6c6ba7956684796d7d582bfa1ab95dfe01dd280159f6bff1e23c1bc32bcc8431",),
                      2529618, member="det_500m.onnx"),),
            _INSIGHTFACE, "SCRFD-0.5GF face detector with 5 keypoints, dynamic N, H, W",
            _SCRFD_INPUT, _SCRFD_OUT,
            notes="upstream is buffalo_sc.zip's det_500m.onnx; if its export differs, "
                  "fetch reports the digest mismatch",
        ),
        ModelSpec(
            "scrfd_500m_fixed640", "face-detection",
            (FileSpec("scrfd_500m_kps_fixed640.onnx", "face",
                      "https://huggingface.co/ykk648/face_lib/resolve/main/face_detect/"
                      "scrfd_onnx/scrfd_500m_bnkps.onnx",
                      ("517cb1980c72422e676738fc45431700fb7cbee56d0f825b623ee427b3e5ce58",
                       "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"),
                      2524095),),
            _INSIGHTFACE, "SCRFD-0.5GF exported at a fixed 1x3x640x640, outputs out0..out8",
            InputSpec(name="images", size=(640, 640), color="RGB", mean=(127.5,) * 3,
                      std=(128.0,) * 3, multiple=32, resize="letterbox"),
            _SCRFD_OUT + " (names carry no meaning)",
        ),
        ModelSpec(
            "scrfd_2.5g", "face-detection",
            (FileSpec("scrfd_2.5g_bnkps.onnx", "face",
                      "https://huggingface.co/MonsterMMORPG/files1/resolve/55b9440/"
                      "scrfd_2.5g_bnkps.onnx",
                      ("041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9",),
                      3292009),),
            _INSIGHTFACE, "SCRFD-2.5GF face detector with 5 keypoints, batch 1, dynamic H, W",
            _SCRFD_INPUT, "per stride 8/16/32: score [A,1], bbox [A,4], kps [A,10] (no batch dim)",
            notes="the mirror's copy is pinned elsewhere as bc24bb34...; a mismatch is reported",
        ),
        ModelSpec(
            "scrfd_10g", "face-detection",
            (FileSpec("scrfd_10g_bnkps.onnx", "face", f"{_HF_ANTELOPE}/scrfd_10g_bnkps.onnx",
                      ("5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",),
                      16923827),),
            _INSIGHTFACE, "SCRFD-10GF face detector with 5 keypoints (antelopev2)",
            _SCRFD_INPUT, "per stride 8/16/32: score [A,1], bbox [A,4], kps [A,10]",
            notes="not in shared/: digest and size as published for antelopev2 and "
                  "buffalo_l det_10g.onnx, not verified on this machine",
        ),
    ]


def _faces_other() -> list[ModelSpec]:
    return [
        ModelSpec(
            "2d106det", "face-landmarks",
            (FileSpec("2d106det.onnx", "face", f"{_HF_ANTELOPE}/2d106det.onnx",
                      ("5a6d69e397582df35ca32228b774a7fa5f43ddc30dfea99d128350bd15ef99d0",
                       "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf"),
                      4952206),),
            _INSIGHTFACE, "InsightFace 106-point 2D landmarks (MobileNet-0.5), 192x192 crop",
            InputSpec(name="data", size=(192, 192), color="RGB", mean=(0.0,) * 3,
                      std=(1.0,) * 3, resize="crop"),
            "fc1 [N,212]: points = (fc1.reshape(106,2)+1)*96 in the 192x192 crop",
            notes="shared copy is fp32 rebuilt from an fp16 export (matches to 5e-7); "
                  "upstream buffalo_l/antelopev2 digest f001b856... also accepted",
        ),
        ModelSpec(
            "yunet", "face-detection",
            (FileSpec("yunet_s.onnx", "face",
                      "https://media.githubusercontent.com/media/opencv/opencv_zoo/main/"
                      "models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
                      ("daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
                       "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"),
                      237823),),
            "Apache-2.0", "YuNet face detector (libfacedetection), 5 keypoints",
            InputSpec(name="input", size=None, default_size=(640, 640), color="BGR",
                      multiple=32, resize="letterbox"),
            "per stride 8/16/32: cls [N,A,1], obj [N,A,1], bbox [N,A,4], kps [N,A,10]",
            notes="shared copy has dynamic N,H,W; OpenCV zoo's 2023mar export "
                  "(8f2383e4...) has the same outputs at a fixed 640x640",
        ),
        ModelSpec(
            "ultraface", "face-detection",
            (FileSpec("ultraface_rfb_320.onnx", "face",
                      "https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-"
                      "Detector-1MB/master/models/onnx/version-RFB-320.onnx",
                      ("34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",),
                      1270727),),
            "MIT", "Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB, 320x240",
            InputSpec(name="input", size=(320, 240), color="RGB", mean=(127.0,) * 3,
                      std=(128.0,) * 3, resize="stretch"),
            "scores [1,4420,2] (background, face), boxes [1,4420,4] normalised corners",
        ),
    ]


# Darknet's letterbox_image, as detect/yolo.py feeds it: input "images" (the exporter's
# name), RGB / 255, centred, padded with 0.5 (127.5 on the 0..255 scale), Darknet's resize.
_YOLO_INPUT = InputSpec(name="images", size=(416, 416), color="RGB", mean=(0.0,) * 3,
                        std=(255.0,) * 3, resize="letterbox", center=True, pad_value=127.5,
                        interpolation="darknet")
_COCO_NAMES_UPSTREAM = "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"


def _yolo() -> list[ModelSpec]:
    tiny = "detect/yolov3-tiny"
    full = "detect/yolov3"
    return [
        ModelSpec(
            "yolov3-tiny", "detection",
            (FileSpec("yolov3-tiny.cfg", tiny, f"{_DARKNET_RAW}/cfg/yolov3-tiny.cfg",
                      ("4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
                       "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7"), 1914),
             FileSpec("yolov3-tiny.weights", tiny, f"{_PJREDDIE}/yolov3-tiny.weights",
                      ("dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",),
                      35434956),
             FileSpec("coco.names", tiny, f"{_DARKNET_RAW}/data/coco.names",
                      ("33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
                       _COCO_NAMES_UPSTREAM), 624)),
            "Darknet YOLO licence (public domain)", "YOLOv3-tiny, COCO 80 classes, Darknet files",
            _YOLO_INPUT, "Darknet cfg + weights: two YOLO heads (13x13, 26x26), 3 anchors each",
        ),
        ModelSpec(
            "yolov3", "detection",
            (FileSpec("yolov3.cfg", full, f"{_DARKNET_RAW}/cfg/yolov3.cfg",
                      ("22489ea38575dfa36c67a90048e8759576416a79d32dc11e15d2217777b9a953",)),
             FileSpec("yolov3.weights", full, f"{_PJREDDIE}/yolov3.weights",
                      ("523e4e69e1d015393a1b0a441cef1d9c7659e3eb2d7e15f793f060a21b32f297",),
                      248007048),
             FileSpec("coco.names", full, f"{_DARKNET_RAW}/data/coco.names",
                      ("33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
                       _COCO_NAMES_UPSTREAM))),
            "Darknet YOLO licence (public domain)", "YOLOv3 (Darknet-53), COCO 80 classes",
            _YOLO_INPUT, "Darknet cfg + weights: three YOLO heads (13, 26, 52), 3 anchors each",
            notes="not in shared/: digests as published for pjreddie's files",
        ),
    ]


# (zoo name suffix, file name, size, sha256) for the voc-release5 models.
_DPM_FILES = (
    ("INRIA_person", "INRIA_inriaperson_final.mat", "INRIA/inriaperson_final.mat", 96839,
     "a062a4202d2ddbd45fb2b5a29c241f9530e4b51da04742e3f6e04a1344f62809"),
) + tuple(
    (f"VOC2007_{cls}", f"VOC2007_{cls}_final.mat", f"VOC2007/{cls}_final.mat", size, sha)
    for cls, size, sha in (
        ("aeroplane", 276374, "a12e17a55a221ee110badd741c82148baed6da2b94107703ced3fc43f08839a6"),
        ("bicycle", 287897, "50b36fa25b7001c04c8a1649254dde3f8d9624e1d3cf7cd15175800cd6c32e14"),
        ("bird", 275400, "9229d32a615aa1abc47b2705082834fa5dc21f432ce4e2b4d7495c9d59995818"),
        ("boat", 272014, "0e8117d2e7bb5435f22017c31fe577a2e603cc4f0e648eb1b0019604d4fd77a2"),
        ("bottle", 267997, "6b1b870dba740c9906bd4c5e188147e6a9761484aaa0c2d729e45249f9ef62fb"),
        ("bus", 288842, "8a3b1c8a1e6cc833da598dfc5d0eedd1744e45a359e5ea9ad1b9f27b2da0240c"),
        ("car", 265662, "2d094acbf5c50ba02a96587b42f2dfd987e71f9981e4d4bff20566a554b85af5"),
        ("cat", 289027, "67023ae3e13649a38dd7900894877e58d3ac85ad00505054f76ae3dcddf8640d"),
        ("chair", 286871, "7e5ee58347e8045c0bc1b5fc35e9d711cc392412fcaedf44e998053b32788092"),
        ("cow", 286732, "10e870fcc4e68ff987976ef0bc57f1b445cc8d97d9f85eaed7f6e3beca801351"),
        ("diningtable", 291998,
         "cd318095ad40a729d6823e99810803edc25fefecb7c5e017e374ffdf2ebce5d7"),
        ("dog", 290800, "e33504f044021a376f6ad4e92e8da04220c94fbd6e817399ef1d5e07fd57af42"),
        ("horse", 285329, "b7ccf7e2cd6062d1b4118f0301fb9d724d5f0f64d501eaa0d1940ae63d43fda2"),
        ("motorbike", 287267, "25d6cef6def760312071214f9be71740a7e3f5c7de17db56ccc4f275b9a32395"),
        ("person", 274635, "7dc603b3b3072cf40ec71f8c7cae4a8ac09fb6dc72dad2a3c3f37aa23ce629fe"),
        ("pottedplant", 267232,
         "cd894a822f989f3f4cf15a5c3d02abdf7b6374d4c7d91eee5eefe656e2ec9a2f"),
        ("sheep", 268616, "dc12526703a0c41d38878a06b611259a9e4a665d4d03280a151a389a0fb70761"),
        ("sofa", 288868, "7f8dff3caec2b5aca6faaf79993866ecfd6a785f5b852b8d8bf3a807e654100c"),
        ("train", 287948, "ff07de97b2ff775b4a344fd62e8f7361ba8b73db167dbf3131a75cb34011604b"),
        ("tvmonitor", 286380, "d46de13d1654e6719f00694d345a9456158b42e06975e9c2be87a677b3805f2c"),
    )
)


def _dpm() -> list[ModelSpec]:
    return [
        ModelSpec(
            f"dpm/{name}", "dpm",
            (FileSpec(fname, "dpm/voc-release5", _VOC5_URL, (sha,), size, member=member),),
            "voc-release5 (MIT-style)",
            f"voc-release5 deformable part model {name} (HOG sbin 8, interval 10)",
            None, "MATLAB struct: root/part filters, deformations, components (scipy.io.loadmat)",
            notes=f"member {member} of voc-release5.tgz",
        )
        for name, fname, member, size, sha in _DPM_FILES
    ]


SPECS: tuple[ModelSpec, ...] = tuple(_scrfd() + _faces_other() + _yolo() + _dpm())
