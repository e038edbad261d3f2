"""ONNX export of the three stages of APTM retrieval (as `retrieval_aptm` runs them), fp32, with dynamic batch and
text length, so that onnxruntime alone encodes a gallery and queries and re-ranks with the ITM head:

- `image_encoder.onnx`: `pixel_values [B, 3, H, W]` -> `image_features [B, D]` (normalised), `image_embeds [B, 1+N, C]`
- `text_encoder.onnx`: `input_ids, attention_mask [B, L]` -> `text_features [B, D]` (normalised), `text_embeds [B, L, H]`
- `fusion_itm.onnx`: `text_embeds [B, L, H], attention_mask [B, L], image_embeds [B, 1+N, C]` -> `itm_logits [B, 2]`
  (index 1 = match) of aligned (text, image) pairs.

Beside each, `<stage>_int8.onnx` (the suffix Transformers.js reads as `dtype: "int8"`) is its dynamic quantisation
(`onnxruntime.quantization.quantize_dynamic`): int8 weights per output channel, uint8 activations quantised per tensor
at run time, so it needs no calibration data and runs with the same inputs and outputs, about 4x smaller and faster on
CPUs with int8 instructions (AVX-512 VNNI, ARM dot product). `docs/performance.md` gives its agreement with fp32.

Exporting needs the `onnx` and `onnxruntime` packages (`pip install aptm-hf[onnx]`). The files are written by torch's
TorchScript-based exporter: the `torch.export` one (`dynamo=True`, torch 2.14) stops, when decomposing, at the reshape
of the Swin window attention's context, which it turns into a `view` of strides it cannot take under a symbolic batch
(`.contiguous().view` fails the same way)."""

from pathlib import Path

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """Pixels -> normalised image features and the image tokens the fusion encoder attends to."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeds = self.model.vision_model(pixel_values).last_hidden_state
        return self.model.image_features_from_embeds(embeds), embeds


class TextEncoder(nn.Module):
    """Token ids and mask -> normalised text features and the token states the fusion encoder reads."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeds = self.model.text_model(input_ids, attention_mask).last_hidden_state
        return self.model.text_features_from_embeds(embeds), embeds


class FusionITM(nn.Module):
    """Text states, their mask and image tokens of aligned pairs -> ITM logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
                image_embeds: torch.Tensor) -> torch.Tensor:
        return self.model.itm_logits(text_embeds, attention_mask, image_embeds)


# file name -> (stage, input names, output names); the batch axis of every tensor and the text axis of text tensors
# are dynamic
ONNX_STAGES = {
    "image_encoder.onnx": (ImageEncoder, ("pixel_values",), ("image_features", "image_embeds")),
    "text_encoder.onnx": (TextEncoder, ("input_ids", "attention_mask"), ("text_features", "text_embeds")),
    "fusion_itm.onnx": (FusionITM, ("text_embeds", "attention_mask", "image_embeds"), ("itm_logits",)),
}
TEXT_AXES = {"input_ids", "attention_mask", "text_embeds"}
INT8_SUFFIX = "_int8"


def int8_name(name: str) -> str:
    """File name of the int8 variant of the stage file `name` (`image_encoder.onnx` -> `image_encoder_int8.onnx`)."""
    stem, extension = name.rsplit(".", 1)
    return f"{stem}{INT8_SUFFIX}.{extension}"


def example_inputs(model: nn.Module, batch: int = 2, length: int = 7) -> dict[str, torch.Tensor]:
    """Inputs of every stage, by name, shaped as `model`'s configuration says."""
    config = model.config
    height, width = config.vision_config.image_size
    with torch.no_grad():
        pixel_values = torch.randn(batch, 3, height, width)
        image_embeds = model.vision_model(pixel_values).last_hidden_state
        input_ids = torch.randint(1000, 2000, (batch, length))
        attention_mask = torch.ones(batch, length, dtype=torch.long)
        attention_mask[-1, length - 2:] = 0
        text_embeds = model.text_model(input_ids, attention_mask).last_hidden_state
    return {"pixel_values": pixel_values, "image_embeds": image_embeds, "input_ids": input_ids,
            "attention_mask": attention_mask, "text_embeds": text_embeds}


def quantize_int8(path: str | Path) -> Path:
    """Write the dynamic int8 quantisation of the fp32 ONNX file `path` beside it (`int8_name`); returns its path.
    Int8 weights per output channel (symmetric, the full 8 bits: the settings of sentence-transformers'
    `avx512_vnni` configuration) of every MatMul, Gather (the word and position embeddings) and Conv (the patch
    embedding); activations as uint8, quantised at run time. Gemm (the projections of the [CLS] states) stays fp32:
    dynamic quantisation has no integer Gemm."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise ImportError("the int8 ONNX variant needs onnxruntime: pip install aptm-hf[onnx]") from error
    path = Path(path)
    target = path.with_name(int8_name(path.name))
    quantize_dynamic(path, target, per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gather", "Conv"])
    return target


def export_onnx(model: nn.Module, folder: str | Path, opset: int = 18, int8: bool = True) -> list[Path]:
    """Write the three stages of the retrieval model `model` (an `APTMModel`, fp32 on CPU) as ONNX files into `folder`
    (created), with `int8` their int8 variants beside them (`quantize_int8`); returns their paths, fp32 first."""
    if not hasattr(model, "itm_logits"):
        raise ValueError(f"{type(model).__name__} is not a retrieval model (APTMModel): nothing to export as ONNX")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    inputs = example_inputs(model)
    paths = []
    for name, (stage, input_names, output_names) in ONNX_STAGES.items():
        axes = {tensor: {0: "batch", 1: "text_length"} if tensor in TEXT_AXES else {0: "batch"}
                for tensor in input_names + output_names}
        path = folder / name
        torch.onnx.export(stage(model).eval(), tuple(inputs[n] for n in input_names), str(path), dynamo=False,
                          input_names=list(input_names), output_names=list(output_names), dynamic_axes=axes,
                          opset_version=opset)
        paths.append(path)
    return paths + ([quantize_int8(path) for path in paths] if int8 else [])
