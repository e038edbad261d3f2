"""Convert checkpoints of the original APTM code (`Shuyu-XJTU/APTM`, `torch.save({'model': ..., 'config': ...})`),
and of its successor MRA (`Shuyu-XJTU/MRA`, the same layout), into Hub folders that
`AutoModel`/`AutoProcessor.from_pretrained(dir, trust_remote_code=True)` load.

An MRA checkpoint is recognised from its tensors and config (`original_family`): its BatchNorm projection heads
(`vision_proj.0.running_var`), a shifted last Swin stage (`vision_encoder.layers.3.blocks.1.attn_mask`) or the
`test_hflip` setting. It converts with MRA's own values as explicit options: `projection_head="pooled_batchnorm"`
(when it has those heads), per-stage windows (`stage_window_sizes`, read from the relative-position tables),
`test_time_flip`, the image size of its Swin json (384x256), the CLIP normalisation and [SEP]-terminated text
(`add_sep_token`).

The original checkpoint stores no architecture numbers: its `config` names the Swin and BERT json files. Widths,
depths, windows, heads of the Swin stages, the fusion layer and the vocabulary are read from tensor shapes; what the
shapes do not tell (BERT attention heads, epsilons, image size) comes from those json files when they are found next to
the checkpoint (by base name) or passed explicitly, else from the paper's values; the vocabulary from the folder its
`text_encoder` names when found next to the checkpoint, else bert-base-uncased's. Every inferred or defaulted value is
reported. Any unmapped, missing or mis-shaped tensor is an error that names it; nothing is dropped silently except the
buffers the model recomputes (`relative_position_index`, `attn_mask`, `position_ids`) and the tied MLM decoder. A
checkpoint without the MLM head (`cls.predictions.*`) converts with a fresh head, reported as defaulted.

    model, processor, report = load_original_checkpoint("checkpoint_best.pth")
    convert_checkpoint("checkpoint_best.pth", "aptm-cuhk")          # writes the Hub folder
"""

import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.utils import CONFIG_NAME

from configuration_aptm import APTMConfig, APTMVisionConfig
from datasets_scripts.files import atomic_folder
from modeling_aptm import APTMForPreTraining
from processing_aptm import ATTRIBUTE_SCHEMAS, CAPTION_LENGTH, APTMImageProcessor, APTMProcessor

from ..factory import load_tokenizer
from ..hub import add_pipelines, write_model_card

RECOMPUTED_BUFFERS = ("relative_position_index", "attn_mask", "position_ids")
MRA_NORMALIZATION = "clip"  # MRA normalises every dataset with the CLIP constants
DATASET_HINTS = (("pa100k", "pa100k"), ("icfg", "icfg-pedes"), ("rstp", "rstpreid"), ("cuhk", "cuhk-pedes"),
                 ("gene", "mals"), ("mals", "mals"))


class ConversionError(ValueError):
    """The checkpoint cannot be converted; the message names the file and the tensors involved."""


@dataclass
class ConversionReport:
    """What the converter inferred, defaulted and dropped, one human-readable line each."""

    inferred: list = field(default_factory=list)
    defaulted: list = field(default_factory=list)
    dropped: list = field(default_factory=list)

    def lines(self):
        return ([f"inferred  {line}" for line in self.inferred] + [f"defaulted {line}" for line in self.defaulted]
                + [f"dropped   {line}" for line in self.dropped])

    def __str__(self):
        return "\n".join(self.lines())


def read_original_checkpoint(path):
    """Load an original `.pth` (`{'model': state_dict, 'config': dict}` or a bare state dict; `weights_only=True`)
    or a `.safetensors` file. Returns `(state_dict, original_config or {})`."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file() and '"aptm"' in (path / "config.json").read_text():
            raise ConversionError(f"{path} is already a converted APTM folder; load it with from_pretrained")
        candidates = sorted(p.name for p in path.iterdir() if p.suffix in (".pth", ".pt", ".bin", ".safetensors"))
        raise ConversionError(f"{path} is a folder; pass the checkpoint file inside it"
                              + (f" (found: {', '.join(candidates)})" if candidates else " (it holds no .pth file)"))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state_dict, config = load_file(str(path)), {}
        except Exception as error:
            raise ConversionError(f"could not read {path} as safetensors: {error}") from error
        return _checked_state_dict(path, state_dict), config
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError) as error:
        raise ConversionError(
            f"could not read {path} as a PyTorch checkpoint (truncated, corrupt, or holding objects other than "
            f"tensors and plain Python values): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ConversionError(f"{path} holds a {type(checkpoint).__name__}, not a state dict or {{'model': ...}}")
    state_dict = checkpoint.get("model", checkpoint)
    config = checkpoint.get("config", {}) if "model" in checkpoint else {}
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ConversionError(f"{path}: the state dict must map names to tensors")
    return _checked_state_dict(path, state_dict), config if isinstance(config, dict) else {}


def _checked_state_dict(path, state_dict):
    if any(key.startswith(("vision_encoder.", "text_encoder.")) for key in state_dict):
        return state_dict
    if any(key.startswith(("vision_model.", "text_model.")) for key in state_dict):
        raise ConversionError(f"{path} already has this project's tensor names (vision_model.*, text_model.*); "
                              "load its folder with from_pretrained instead of converting it")
    raise ConversionError(f"{path} is not an APTM checkpoint: no vision_encoder.* or text_encoder.* tensors "
                          f"(first keys: {list(state_dict)[:5]})")


def normalize_text_keys(state_dict):
    """Accept checkpoints saved with a bare BertModel (`text_encoder.embeddings...`), as the original loader does."""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith("text_encoder.") and not key.startswith(("text_encoder.bert.", "text_encoder.cls.")):
            key = "text_encoder.bert." + key[len("text_encoder."):]
        renamed[key] = value
    return renamed


def _find_json(name, checkpoint_dir, explicit):
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return json.loads(path.read_text()), path
    if name:
        candidate = Path(checkpoint_dir) / Path(name).name
        if candidate.is_file():
            return json.loads(candidate.read_text()), candidate
    return {}, None


def original_family(state_dict, original_config=None):
    """`"mra"` for a checkpoint of MRA (APTM's successor: BatchNorm projection heads, a shifted last Swin stage, or
    the `test_hflip` setting in its config), else `"aptm"`."""
    original_config = original_config or {}
    if "vision_proj.0.running_var" in state_dict or "test_hflip" in original_config:
        return "mra"
    last = _stage_count(state_dict, r"vision_encoder\.layers\.(\d+)\.") - 1
    if any(re.match(rf"vision_encoder\.layers\.{last}\.blocks\.\d+\.attn_mask$", key) for key in state_dict):
        return "mra"
    return "aptm"


def _table_window(state_dict, stage):
    rows = state_dict[f"vision_encoder.layers.{stage}.blocks.0.attn.relative_position_bias_table"].shape[0]
    return round(rows ** 0.5 + 1) // 2


def find_tokenizer(name, checkpoint_dir, report):
    """The vocabulary folder the original config names (`text_encoder`, e.g. `data/bert-base-uncased`) when a folder of
    that base name with a `vocab.txt` sits next to the checkpoint, else None (the default bert-base-uncased vocab)."""
    if name:
        candidate = Path(checkpoint_dir) / Path(name).name
        if (candidate / "vocab.txt").is_file():
            report.inferred.append(f"tokenizer read from {candidate} (text_encoder = {name!r})")
            return candidate
    return None


def _stage_count(state_dict, pattern):
    found = {int(m.group(1)) for key in state_dict if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def infer_config(state_dict, original_config=None, checkpoint_dir=".", vision_config_file=None, text_config_file=None,
                 report=None):
    """Build the `APTMConfig` of an original state dict (with `text_encoder.bert.` keys)."""
    original_config = original_config or {}
    report = report if report is not None else ConversionReport()
    vision_json, vision_path = _find_json(original_config.get("vision_config"), checkpoint_dir, vision_config_file)
    text_json, text_path = _find_json(original_config.get("text_config"), checkpoint_dir, text_config_file)
    for label, name, path in (("vision", original_config.get("vision_config"), vision_path),
                              ("text", original_config.get("text_config"), text_path)):
        if path is not None:
            report.inferred.append(f"{label} settings read from {path}")
        else:
            report.defaulted.append(f"{label} json {name or '(not named)'} not found next to the checkpoint; "
                                    f"using shapes and the paper's values")

    def from_json(source, key, default, label):
        if key in source:
            return source[key]
        report.defaulted.append(f"{label} = {default!r} (paper value)")
        return default

    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    embed_dim, channels, patch, _ = shape("vision_encoder.patch_embed.proj.weight")
    num_stages = _stage_count(state_dict, r"vision_encoder\.layers\.(\d+)\.")
    depths = [_stage_count(state_dict, rf"vision_encoder\.layers\.{i}\.blocks\.(\d+)\.") for i in range(num_stages)]
    num_heads = [shape(f"vision_encoder.layers.{i}.blocks.0.attn.relative_position_bias_table")[1]
                 for i in range(num_stages)]
    window = _table_window(state_dict, 0)
    mlp_ratio = shape("vision_encoder.layers.0.blocks.0.mlp.fc1.weight")[0] / embed_dim
    height = vision_json.get("h", original_config.get("h"))
    width = vision_json.get("w", original_config.get("w"))
    if height is None or width is None:
        height, width = APTMVisionConfig().image_size  # the paper's values are the configuration's defaults
        report.defaulted.append(f"image_size = [{height}, {width}] (paper value)")
    vision = {"image_size": [height, width], "patch_size": patch, "num_channels": channels, "embed_dim": embed_dim,
              "depths": depths, "num_heads": num_heads, "window_size": window, "mlp_ratio": mlp_ratio,
              "qkv_bias": "vision_encoder.layers.0.blocks.0.attn.qkv.bias" in state_dict}
    # each stage's window from its table; listed only where one differs from `window` clipped to the stage's grid
    stage_windows = [_table_window(state_dict, i) for i in range(num_stages)]
    clipped = [min(window, height // (patch * 2**i), width // (patch * 2**i)) for i in range(num_stages)]
    if stage_windows != clipped:
        vision["stage_window_sizes"] = stage_windows
    report.inferred.append(f"vision: embed_dim {embed_dim}, depths {depths}, heads {num_heads}, window {window}"
                           + (f" (per stage {stage_windows})" if stage_windows != clipped else "")
                           + f", patch {patch}, image {height}x{width}")

    vocab, hidden = shape("text_encoder.bert.embeddings.word_embeddings.weight")
    num_layers = _stage_count(state_dict, r"text_encoder\.bert\.encoder\.layer\.(\d+)\.")
    cross = [i for i in range(num_layers)
             if f"text_encoder.bert.encoder.layer.{i}.crossattention.self.query.weight" in state_dict]
    if not cross or cross != list(range(cross[0], num_layers)):
        raise ConversionError(f"expected cross-attention in the last BERT layers, found it in layers {cross}")
    fusion_layer = cross[0]
    paper_heads = 12 if hidden == 768 else max(1, hidden // 64)
    text = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_attention_heads": from_json(text_json, "num_attention_heads", paper_heads, "text num_attention_heads"),
        "intermediate_size": shape("text_encoder.bert.encoder.layer.0.intermediate.dense.weight")[0],
        "max_position_embeddings": shape("text_encoder.bert.embeddings.position_embeddings.weight")[0],
        "type_vocab_size": shape("text_encoder.bert.embeddings.token_type_embeddings.weight")[0],
        "hidden_act": text_json.get("hidden_act", "gelu"),
        "layer_norm_eps": text_json.get("layer_norm_eps", 1e-12),
        "hidden_dropout_prob": text_json.get("hidden_dropout_prob", 0.1),
        "attention_probs_dropout_prob": text_json.get("attention_probs_dropout_prob", 0.1),
        "pad_token_id": text_json.get("pad_token_id", 0),
    }
    report.inferred.append(f"text: hidden {hidden}, vocab {vocab}, {num_layers} layers split {fusion_layer} text + "
                           f"{num_layers - fusion_layer} fusion, heads {text['num_attention_heads']}")
    family = original_family(state_dict, original_config)
    pooled = "vision_proj.0.running_var" in state_dict
    config = APTMConfig(
        vision_config=vision,
        text_config={**text, "num_hidden_layers": fusion_layer},
        cross_config={**text, "num_hidden_layers": num_layers - fusion_layer},
        embed_dim=shape("vision_proj.2.weight" if pooled else "vision_proj.weight")[0],
        projection_head="pooled_batchnorm" if pooled else "linear",
        projection_dropout=float(original_config.get("itc_dop", 0.0)) if pooled else 0.0,
        test_time_flip=bool(original_config.get("test_hflip", family == "mra")),
        # what the checkpoint does not state keeps the configuration's default (the paper's value)
        **({"temp": float(state_dict["temp"])} if "temp" in state_dict else {}),
        **({"k_test": original_config["k_test"]} if "k_test" in original_config else {}),
        num_attributes=len(ATTRIBUTE_SCHEMAS["pa100k" if original_config.get("pa100k") else "mals"][0]),
        attribute_label_smoothing=float(original_config.get("LabelSmooth", 0.0) or 0.0),
    )
    report.inferred.append(f"embed_dim {config.embed_dim}, temp {config.temp:.6g} (from the state dict), "
                           f"k_test {config.k_test}")
    if family == "mra":
        report.inferred.append(f"an MRA checkpoint: projection head {config.projection_head}, test-time flip "
                               f"{config.test_time_flip}, [SEP]-terminated text, CLIP normalisation")
    return config


def dataset_of(original_config, report):
    """Dataset whose normalisation the checkpoint was evaluated with (test file first, then the image root)."""
    for key in ("test_file", "image_root", "train_file"):
        value = str(original_config.get(key, "")).lower()
        for hint, name in DATASET_HINTS:
            if hint in value:
                report.inferred.append(f"normalisation of {name} (from {key} = {original_config[key]!r})")
                return name
    report.defaulted.append("normalisation of cuhk-pedes (the config names no dataset)")
    return "cuhk-pedes"


def map_key(key, fusion_layer):
    """Original key -> our key, or None for a buffer the model recomputes or the tied MLM decoder."""
    if key.endswith(RECOMPUTED_BUFFERS) or key == "text_encoder.cls.predictions.decoder.weight":
        return None
    if key.startswith("vision_encoder."):
        return "vision_model." + key[len("vision_encoder."):]
    if key.startswith("text_encoder.bert.embeddings."):
        return "text_model.embeddings." + key[len("text_encoder.bert.embeddings."):]
    if match := re.match(r"text_encoder\.bert\.encoder\.layer\.(\d+)\.(.+)", key):
        index, rest = int(match.group(1)), match.group(2)
        if index < fusion_layer:
            return f"text_model.encoder.layer.{index}.{rest}"
        return f"fusion_model.layer.{index - fusion_layer}.{rest}"
    if key in ("text_encoder.cls.predictions.bias", "text_encoder.cls.predictions.decoder.bias"):
        return "mlm_head.decoder.bias"
    if key.startswith("text_encoder.cls.predictions.transform."):
        return "mlm_head.transform." + key[len("text_encoder.cls.predictions.transform."):]
    if match := re.match(r"(vision_proj|text_proj)\.([02])\.(.+)", key):  # MRA's Sequential(BatchNorm, Dropout, Linear)
        head, layer, rest = match.groups()
        return f"{head}.{'norm' if layer == '0' else 'dense'}.{rest}"
    if key.split(".")[0] in ("vision_proj", "text_proj", "itm_head", "temp"):
        return key
    return ""


def check_shifted_windows(state_dict, model):
    """Where the checkpoint saved its Swin blocks' shifted-window masks (`attn_mask`, as both originals do), the
    blocks the config builds must be shifted exactly there, with masks of the same shape; raise naming the block."""
    if not any(key.endswith(".attn_mask") for key in state_dict):
        return
    for stage_index, stage in enumerate(model.vision_model.layers):
        for block_index, block in enumerate(stage.blocks):
            key = f"vision_encoder.layers.{stage_index}.blocks.{block_index}.attn_mask"
            saved = None if state_dict.get(key) is None else tuple(state_dict[key].shape)
            built = None if block.attn_mask is None else tuple(block.attn_mask.shape)
            if saved != built:
                raise ConversionError(f"{key}: the checkpoint's shifted-window mask {saved} does not match the block "
                                      f"this geometry builds ({built}; window {block.window_size}, shift "
                                      f"{block.shift_size}); check the image size of the Swin json")


def convert_state_dict(state_dict, config, report=None):
    """Map an original state dict onto `APTMForPreTraining`'s names; raise on unmapped, missing or mis-shaped
    tensors (naming them)."""
    report = report if report is not None else ConversionReport()
    with torch.device("meta"):
        model = APTMForPreTraining(config)
        expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    check_shifted_windows(state_dict, model)
    expected.pop("mlm_head.decoder.weight")
    converted, unmapped, dropped = {}, [], set()
    for key, tensor in state_dict.items():
        target = map_key(key, config.text_config.num_hidden_layers)
        if target is None:
            dropped.add(re.sub(r"\.\d+\.", ".N.", key))
            continue
        if target == "" or target not in expected:
            unmapped.append(key)
            continue
        if target in converted and not torch.equal(converted[target], tensor):
            raise ConversionError(f"{key} differs from the tensor already mapped to {target}")
        converted[target] = tensor.float() if tensor.is_floating_point() else tensor
    decoder = state_dict.get("text_encoder.cls.predictions.decoder.weight")
    embeddings = state_dict.get("text_encoder.bert.embeddings.word_embeddings.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise ConversionError("text_encoder.cls.predictions.decoder.weight is not tied to the word embeddings; "
                              "this model ties them")
    if unmapped:
        raise ConversionError(f"{len(unmapped)} tensors have no place in the APTM model: {unmapped[:20]}")
    missing = sorted(set(expected) - set(converted))
    if missing and all(name.startswith("mlm_head.") for name in missing):
        report.defaulted.append("mlm_head.* newly initialised (the checkpoint has no MLM head: retrieval and attributes "
                                "are unaffected, MLM training starts from scratch)")
        missing = []
    if missing:
        raise ConversionError(f"{len(missing)} tensors of the APTM model are missing from the checkpoint: {missing[:20]}")
    wrong = [f"{name}: checkpoint {tuple(converted[name].shape)} vs model {shape}"
             for name, shape in expected.items() if name in converted and tuple(converted[name].shape) != shape]
    if wrong:
        raise ConversionError("shape mismatches: " + "; ".join(wrong[:20]))
    report.dropped.extend(sorted(dropped))
    return converted


def load_original_checkpoint(path, tokenizer_dir=None, vision_config_file=None, text_config_file=None,
                             normalization=None):
    """Original checkpoint -> `(APTMForPreTraining in eval mode, APTMProcessor, ConversionReport)`."""
    path = Path(path)
    report = ConversionReport()
    state_dict, original_config = read_original_checkpoint(path)
    state_dict = normalize_text_keys(state_dict)
    try:
        config = infer_config(state_dict, original_config, path.parent, vision_config_file, text_config_file, report)
    except KeyError as error:
        raise ConversionError(f"{path}: tensor {error} is missing; this is not a complete APTM checkpoint") from error
    weights = convert_state_dict(state_dict, config, report)
    model = APTMForPreTraining(config)
    model.load_state_dict(weights, strict=False)
    model.tie_weights()
    mra = original_family(state_dict, original_config) == "mra"
    if normalization is None and mra:
        normalization = MRA_NORMALIZATION
        report.inferred.append("normalisation clip (MRA's, for every dataset)")
    normalization = normalization or dataset_of(original_config, report)
    schema = "pa100k" if config.num_attributes == len(ATTRIBUTE_SCHEMAS["pa100k"][0]) else "mals"
    tokenizer_dir = tokenizer_dir or find_tokenizer(original_config.get("text_encoder"), path.parent, report)
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) != config.text_config.vocab_size:
        raise ConversionError(f"the tokenizer has {len(tokenizer)} tokens but the checkpoint's vocabulary has "
                              f"{config.text_config.vocab_size}; pass the matching vocab.txt folder with --tokenizer")
    caption_length = original_config.get("max_tokens", CAPTION_LENGTH)
    report.inferred.append(f"caption length {caption_length} tokens")
    height, width = config.vision_config.image_size
    image_processor = APTMImageProcessor.for_dataset(normalization, size={"height": height, "width": width})
    processor = APTMProcessor.from_schema(image_processor, tokenizer, schema, max_length=caption_length,
                                          add_sep_token=mra)
    return model.eval(), processor, report


def convert_checkpoint(path, output_dir, **kwargs):
    """Convert `path` and write a Hub folder (safetensors, config, processor, remote code with the pipelines, model
    card) to `output_dir`, through `atomic_folder` (a new folder appears whole or not at all). Returns the
    `ConversionReport`."""
    model, processor, report = load_original_checkpoint(path, **kwargs)
    with atomic_folder(output_dir, last=CONFIG_NAME) as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        add_pipelines(folder)
        write_model_card(folder, model.config, processor, source=f"converted from the original checkpoint "
                         f"`{Path(path).name}`", notes=report.lines())
    return report
