"""Exports of a checkpoint for runtimes without torch."""

from .onnx import ONNX_STAGES, export_onnx, int8_name, quantize_int8

__all__ = ["ONNX_STAGES", "export_onnx", "int8_name", "quantize_int8"]
