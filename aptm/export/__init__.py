"""Exports of a checkpoint for runtimes without torch."""

from .onnx import ONNX_STAGES, export_onnx

__all__ = ["ONNX_STAGES", "export_onnx"]
