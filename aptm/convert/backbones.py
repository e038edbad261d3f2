"""Initialise APTM from public backbones, as pre-training from scratch does: a Swin checkpoint (ImageNet, window 7,
224 px; the Microsoft layout or timm's) for the image encoder and a BERT checkpoint for the text and fusion encoders
(layers `0..T-1` -> text, `T..T+F-1`, or `F` layers from a chosen one, -> fusion; the cross-attention stays
newly initialised).

Each backbone is a local file or folder, or else a Hub id: the Swin through timm's own Hub support
(`timm/swin_base_patch4_window7_224.ms_in22k`; timm is the `timm` extra), BERT through transformers
(`google-bert/bert-base-uncased`).

The relative-position tables are resized from the checkpoint's window (13 x 13 entries for window 7) to APTM's
(15 x 15 for window 8, 7 x 7 for the window-4 stage) as the original does (geometric offsets + bicubic spline; see
`aptm.convert.relative_position`).
"""

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from modeling_aptm import APTMForPreTraining

from .relative_position import resize_relative_position_table


def _is_hub_id(source):
    """A string naming no local file or folder is taken for a Hub id."""
    return isinstance(source, str) and not Path(source).exists()


def _hub_swin_state_dict(repo_id):
    try:
        import timm
    except ImportError as error:
        raise ImportError(f"the Swin {repo_id!r} is read from the Hub by timm: pip install 'aptm-hf[timm]'") from error
    return timm.create_model(f"hf-hub:{repo_id}", pretrained=True).state_dict()


def _read_state_dict(path):
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint.get("model", checkpoint.get("state_dict", checkpoint))


def swin_state_dict(source, vision_model):
    """Map a Swin state dict (or file, or timm Hub id) onto `vision_model`'s names and shapes. Returns
    `(state_dict, notes)`."""
    if isinstance(source, dict):
        state = source
    else:
        state = _hub_swin_state_dict(source) if _is_hub_id(source) else _read_state_dict(source)
    stages = len(vision_model.layers)
    timm_layout = "layers.0.downsample.reduction.weight" not in state and f"layers.{stages - 1}.downsample.reduction.weight" in state
    targets = vision_model.state_dict()
    mapped, notes = {}, []
    for key, value in state.items():
        if key.startswith("head") or key.endswith(("relative_position_index", "attn_mask")) or key.startswith("absolute_pos_embed"):
            notes.append(f"dropped {key}")
            continue
        if timm_layout and (match := re.match(r"layers\.(\d+)\.downsample\.(.+)", key)):
            key = f"layers.{int(match.group(1)) - 1}.downsample.{match.group(2)}"
        if key not in targets:
            raise KeyError(f"Swin tensor {key} has no place in the APTM vision encoder")
        if key.endswith("relative_position_bias_table") and value.shape != targets[key].shape:
            size = round(targets[key].shape[0] ** 0.5)
            notes.append(f"resized {key} {tuple(value.shape)} -> {tuple(targets[key].shape)}")
            value = resize_relative_position_table(value, size)
        if value.shape != targets[key].shape:
            raise ValueError(f"Swin tensor {key} has shape {tuple(value.shape)}, the model expects {tuple(targets[key].shape)}")
        mapped[key] = value
    missing = sorted(k for k in targets if k not in mapped and not k.endswith(("relative_position_index", "attn_mask")))
    if missing:
        raise KeyError(f"the Swin checkpoint lacks {missing[:10]}")
    return mapped, notes


def bert_state_dict(source, model, fusion_start=None):
    """Map a BERT checkpoint (a folder with `model.safetensors`, a Hub id, or a state dict with or without the `bert.`
    prefix) onto `model.text_model` and the self-attention/feed-forward weights of `model.fusion_model`: layers
    `fusion_start..` (default: those after the text encoder's) initialise the fusion layers."""
    if isinstance(source, dict):
        state = source
    elif _is_hub_id(source):
        from transformers import AutoModel

        state = AutoModel.from_pretrained(source).state_dict()
    else:
        folder = Path(source)
        files = [folder / "model.safetensors", folder / "pytorch_model.bin"]
        path = next((f for f in files if f.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{folder} holds neither model.safetensors nor pytorch_model.bin")
        state = _read_state_dict(path)
    text_layers = model.config.text_config.num_hidden_layers
    fusion_start = text_layers if fusion_start is None else fusion_start
    fusion_layers = model.config.cross_config.num_hidden_layers
    mapped = {}
    for key, value in state.items():
        key = re.sub(r"^(bert|model)\.", "", key)
        if key.startswith("embeddings.") and not key.endswith("position_ids"):
            mapped[f"text_model.{key}"] = value
        elif match := re.match(r"encoder\.layer\.(\d+)\.(.+)", key):
            index, rest = int(match.group(1)), match.group(2)
            if index < text_layers:
                mapped[f"text_model.encoder.layer.{index}.{rest}"] = value
            if fusion_start <= index < fusion_start + fusion_layers:
                mapped[f"fusion_model.layer.{index - fusion_start}.{rest}"] = value
    targets = model.state_dict()
    for key, value in mapped.items():
        if key not in targets or targets[key].shape != value.shape:
            raise ValueError(f"BERT tensor for {key} has shape {tuple(value.shape)}; the model expects "
                             f"{tuple(targets[key].shape) if key in targets else 'no such tensor'}")
    return mapped


def init_from_pretrained_backbones(model, swin=None, bert=None, fusion_start=None):
    """Load a Swin checkpoint and/or a BERT checkpoint (fusion layers from its layers `fusion_start..`, see
    `bert_state_dict`) into an APTM model in place. Returns notes on what was resized or dropped, and the names left
    newly initialised."""
    notes = []
    if swin is not None:
        vision, swin_notes = swin_state_dict(swin, model.vision_model)
        model.vision_model.load_state_dict(vision, strict=False)
        notes += swin_notes
    if bert is not None:
        text = bert_state_dict(bert, model, fusion_start)
        model.load_state_dict(text, strict=False)
        fresh = sorted({re.sub(r"\.\d+\.", ".N.", k) for k in model.state_dict()
                        if k.startswith(("text_model.", "fusion_model.")) and k not in text})
        notes.append(f"newly initialised: {fresh}")
    return notes


def from_vision_text_pretrained(config, swin=None, bert=None, model_class=None, fusion_start=None):
    """Build an APTM model (default `APTMForPreTraining`) from `config` and initialise it from public backbones."""
    model = (model_class or APTMForPreTraining)(config)
    notes = init_from_pretrained_backbones(model, swin=swin, bert=bert, fusion_start=fusion_start)
    return model, notes
