"""Model cards and pushing APTM checkpoints to the Hugging Face Hub."""

from pathlib import Path

USAGE = '''```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{repo}", trust_remote_code=True)
inputs = processor(text=["a woman in a red coat with a black backpack"], images=[image])
outputs = model(**inputs)
outputs.itm_logits.softmax(-1)[:, 1]   # matching probability of each (text, image) pair
```'''


def model_card(config, processor, repo="path/to/this/folder", source="", metrics=None, notes=None):
    """Markdown model card: front matter, architecture, usage snippet, evaluation table and conversion notes."""
    vision, text, cross = config.vision_config, config.text_config, config.cross_config
    lines = [
        "---", "library_name: transformers", "license: apache-2.0", "tags:", "- aptm", "- text-based-person-retrieval",
        "- pedestrian-attribute-recognition", "- custom_code", "pipeline_tag: zero-shot-image-classification", "---",
        "", "# APTM", "",
        "Text-based person retrieval and pedestrian attribute recognition with APTM (Attribute Prompt Learning and "
        f"Text Matching, ACM MM 2023). {source}".strip(), "",
        "## Architecture", "",
        f"- image encoder: Swin, {vision.image_size[0]}x{vision.image_size[1]} input, embed dim {vision.embed_dim}, "
        f"depths {vision.depths}, heads {vision.num_heads}, window {vision.window_size}",
        f"- text encoder: {text.num_hidden_layers} BERT layers, hidden {text.hidden_size}; fusion encoder: "
        f"{cross.num_hidden_layers} layers with cross-attention to the image tokens",
        f"- ITC features: {config.embed_dim}-d, temperature {config.temp:.4g}; ITM re-ranking of the top "
        f"{config.k_test} candidates",
        f"- attribute prompts: {len(processor.attribute_names)} attributes "
        f"({', '.join(processor.attribute_names[:5])}, ...)",
        f"- image normalisation: mean {[round(v, 4) for v in processor.image_processor.image_mean]}, "
        f"std {[round(v, 4) for v in processor.image_processor.image_std]}",
        "", "## Usage", "", USAGE.format(repo=repo),
    ]
    if metrics:
        lines += evaluation_section(metrics)
    if notes:
        lines += ["", "## Conversion notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def evaluation_section(metrics):
    """Lines of the card's `## Evaluation` table (one row of `metrics`)."""
    return ["", "## Evaluation", "", "| " + " | ".join(metrics) + " |", "|" + "---|" * len(metrics),
            "| " + " | ".join(f"{value:.2f}" if isinstance(value, float) else str(value) for value in metrics.values())
            + " |"]


def card_for_push(card, repo_id, metrics=None):
    """An existing model card made ready for `repo_id`: the usage snippet names it, and `metrics` (when given) replace
    the evaluation table. The source sentence and conversion notes stay."""
    card = card.replace(USAGE.format(repo="path/to/this/folder"), USAGE.format(repo=repo_id))
    if metrics:
        lines = card.rstrip("\n").split("\n")
        if "## Evaluation" in lines:
            start = lines.index("## Evaluation") - 1
            stop = next((i for i in range(start + 2, len(lines)) if lines[i].startswith("## ")), len(lines) + 1) - 1
            lines[start:stop] = []
            lines[start:start] = evaluation_section(metrics)
        else:
            at = lines.index("## Conversion notes") - 1 if "## Conversion notes" in lines else len(lines)
            lines[at:at] = evaluation_section(metrics)
        card = "\n".join(lines) + "\n"
    return card


def write_model_card(folder, config, processor, **kwargs):
    """Write `README.md` (the model card) into a checkpoint folder."""
    path = Path(folder) / "README.md"
    path.write_text(model_card(config, processor, **kwargs))
    return path


def push_checkpoint(folder, repo_id, private=False, token=None, metrics=None, commit_message="Upload APTM checkpoint"):
    """Push a checkpoint folder (model, processor, remote code) to the Hub with a model card whose usage snippet names
    `repo_id` and whose table shows `metrics` (e.g. the evaluation's `metrics.json`). The folder's own card (training
    source, conversion notes) is kept and updated; a folder without one gets a new card. Returns the commit info."""
    from huggingface_hub import HfApi
    from transformers import AutoConfig, AutoProcessor

    folder = Path(folder)
    for name in ("config.json", "processor_config.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: save the model and processor with save_pretrained first")
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"{folder} has no safetensors weights")
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    card = folder / "README.md"
    if card.is_file():
        card.write_text(card_for_push(card.read_text(), repo_id, metrics))
    else:
        write_model_card(folder, config, processor, repo=repo_id, metrics=metrics, source="Published with the aptm-hf tools.")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             ignore_patterns=["checkpoint-*", "*.pt", "rng_state*", "optimizer*", "scheduler*"])
