"""Model runtime: backends (ONNX Runtime, OpenVINO), sessions, model specs and zoo.

Import what you need from the submodules; this package imports nothing heavy at
import time. The main entry point is :func:`viewfinder.runtime.session.load_session`.
"""
