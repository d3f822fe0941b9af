"""Video: probe, decode (with frame selection and threads), demux to Annex-B, encode.

Everything goes through PyAV (FFmpeg's libavformat/libavcodec/libswscale), so the
containers and codecs are FFmpeg's: MP4, MKV, AVI, MOV and raw Annex-B
``.h264``/``.h265`` in; H.264 (libx264) or H.265 (libx265) MP4/MKV/MOV out.
"""

from viewfinder.media.video._open import RAW_FORMATS, VideoInfo, probe
from viewfinder.media.video.demux import ANNEXB_FILTERS, demux
from viewfinder.media.video.reader import READER_FORMATS, VideoFrame, VideoReader
from viewfinder.media.video.writer import ENCODERS, WRITER_FORMATS, VideoWriter

__all__ = [
    "ANNEXB_FILTERS",
    "ENCODERS",
    "RAW_FORMATS",
    "READER_FORMATS",
    "WRITER_FORMATS",
    "VideoFrame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "demux",
    "probe",
]
