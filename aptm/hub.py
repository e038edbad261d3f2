"""What a checkpoint folder carries to the Hugging Face Hub: the retrieval pipelines as remote code, the model card,
and the push itself."""

import json
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from transformers import AutoConfig, AutoProcessor
from transformers.dynamic_module_utils import custom_object_save

from pipeline_aptm import PIPELINES, custom_pipelines

USAGE = '''```python
from transformers import pipeline

search = pipeline("text-person-retrieval", model="{repo}", trust_remote_code=True)
gallery = search.encode_gallery(images)            # a list of PIL images, encoded once
search("a woman in a red coat with a black backpack", gallery=gallery, top_k=5)
# [{{"index": 3, "score": 1.0, "cosine": 0.52, "itm_logit": 4.1}}, ...]   cosine top-k re-ranked by the ITM head

attributes = pipeline("pedestrian-attribute-recognition", model="{repo}", trust_remote_code=True)
attributes(images[0])                               # [{{"attribute", "statement", "score"}}, ...]
```

The model alone, for (text, image) pairs:

```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{repo}", trust_remote_code=True)
inputs = processor(text=["a woman in a red coat with a black backpack"], images=[image])
outputs = model(**inputs)
outputs.itm_logits.softmax(-1)[:, 1]   # matching probability of each (text, image) pair
```'''
LOCAL_REPO = "path/to/this/folder"
# The transformers versions the remote code is tested on: the lowest that `setup.cfg` allows (a cached second
# environment, tests/hub/test_transformers_range.py) and the pinned one (constraints/ci.txt).
TESTED_TRANSFORMERS = ("5.0.0", "5.23.0")
LIBRARY = Path(__file__).resolve().parent
# The package's modules a Hub artefact runs, as (path in the artefact folder, path in this package): standalone modules
# (numpy, torch, Pillow, tqdm, OpenCV and each other), copied as files because a folder on the Hub, in a zip or on
# Windows carries no links. The Space keeps the package's layout under `aptm_parts/`, so the modules' relative imports hold.
SPACE_LIBRARY_FILES = tuple((f"aptm_parts/{name}", name) for name in (
    "images.py", "footage/crops.py", "footage/detection.py", "footage/labels.py", "footage/ranking.py",
    "footage/sources.py", "footage/timeline.py", "footage/tracking.py"))
METRIC_LIBRARY_FILES = (("aptm_metrics.py", "metrics.py"),)
TAGS = ["aptm", "text-based-person-retrieval", "pedestrian-attribute-recognition", "person-search", "custom_code"]
RETRIEVAL_METRICS = {"R@1": "recall@1", "R@5": "recall@5", "R@10": "recall@10", "mAP": "map", "mINP": "minp"}
ATTRIBUTE_METRICS = {"mA": "mean_accuracy", "accuracy": "accuracy", "precision": "precision", "recall": "recall",
                     "F1": "f1"}


def hub_id(source):
    """`source` when it names a Hub repository (`owner/name`, not an existing local path), else None."""
    if source is None or Path(source).exists() or str(source).count("/") != 1:
        return None
    return str(source)


def eval_results(metrics, dataset):
    """`EvalResult`s of the card's model-index from a flat `{"<split> <metric>[ (variant)]": value}` table, e.g.
    `{"test R@1": 24.8, "test mA (dual encoder)": 65.8}` (the split is the first word when it names one)."""
    results = []
    for name, value in metrics.items():
        words = name.split()
        split = words.pop(0) if len(words) > 1 and words[0] in ("test", "validation") else None
        key = words[0] if words else name
        if key in RETRIEVAL_METRICS:
            task, task_name, metric_type = "text-person-retrieval", "Text-based person retrieval", RETRIEVAL_METRICS[key]
        elif key in ATTRIBUTE_METRICS:
            task, task_name = "pedestrian-attribute-recognition", "Pedestrian attribute recognition"
            metric_type = ATTRIBUTE_METRICS[key]
        else:
            continue
        results.append(EvalResult(task_type=task, task_name=task_name, dataset_type=dataset, dataset_name=dataset,
                                  dataset_split=split, metric_type=metric_type, metric_name=name,
                                  metric_value=float(value)))
    return results


def card_data(repo, dataset=None, base_model=None, metrics=None):
    """The card's front matter: library, the pipeline's task, tags, dataset, base model and (with a dataset and
    metrics) the model-index the Hub renders as evaluation results."""
    return ModelCardData(
        library_name="transformers", license="apache-2.0", pipeline_tag="text-person-retrieval", tags=TAGS,
        datasets=[dataset] if dataset else None, base_model=base_model, model_name=repo,
        eval_results=eval_results(metrics, dataset) if metrics and dataset else None)


def model_card(config, processor, repo=LOCAL_REPO, source="", metrics=None, notes=None, dataset=None,
               base_model=None):
    """Markdown model card: front matter (`card_data`), architecture, usage snippets, evaluation table and conversion
    notes."""
    vision, text, cross = config.vision_config, config.text_config, config.cross_config
    lines = [
        "---", card_data(repo, dataset, base_model, metrics).to_yaml(), "---", "", "# APTM", "",
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
        f"- remote code tested with transformers {TESTED_TRANSFORMERS[0]} to {TESTED_TRANSFORMERS[1]}",
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


def card_for_push(card, repo_id, metrics=None, dataset=None):
    """An existing model card made ready for `repo_id`: the usage snippets and the model-index name it, and `metrics`
    (when given) replace the evaluation table and the results on `dataset` (default: the card's). The source sentence
    and conversion notes stay."""
    parsed = ModelCard(card)
    data = parsed.data
    data.model_name = repo_id
    if dataset:
        data.datasets = [dataset]
    if metrics and data.datasets:
        data.eval_results = eval_results(metrics, data.datasets[0])
    text = parsed.text.replace(USAGE.format(repo=LOCAL_REPO), USAGE.format(repo=repo_id))
    if metrics:
        lines = text.rstrip("\n").split("\n")
        if "## Evaluation" in lines:
            start = lines.index("## Evaluation") - 1
            stop = next((i for i in range(start + 2, len(lines)) if lines[i].startswith("## ")), len(lines) + 1) - 1
            lines[start:stop] = []
            lines[start:start] = evaluation_section(metrics)
        else:
            at = lines.index("## Conversion notes") - 1 if "## Conversion notes" in lines else len(lines)
            lines[at:at] = evaluation_section(metrics)
        text = "\n".join(lines) + "\n"
    return f"---\n{data.to_yaml()}\n---\n{text}"


def add_pipelines(folder):
    """Make a saved checkpoint folder carry the APTM pipelines (`pipeline_aptm.PIPELINES`) as remote code: their
    tasks in `config.json`'s `custom_pipelines` and their files (`pipeline_aptm.py`, `retrieval_aptm.py`) beside the
    model code, so `pipeline(task, model=folder_or_repo_id, trust_remote_code=True)` works with transformers alone."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: save the model with save_pretrained first")
    config = json.loads(path.read_text())
    config["custom_pipelines"] = custom_pipelines()
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for cls in {cls.__module__: cls for cls in PIPELINES.values()}.values():
        custom_object_save(cls, folder)
    return folder


def write_model_card(folder, config, processor, **kwargs):
    """Write `README.md` (the model card) into a checkpoint folder."""
    path = Path(folder) / "README.md"
    path.write_text(model_card(config, processor, **kwargs))
    return path


def push_checkpoint(folder, repo_id, private=False, token=None, metrics=None, dataset=None,
                    commit_message="Upload APTM checkpoint", onnx=False):
    """Push a checkpoint folder (model, processor, remote code with the pipelines) to the Hub with a model card whose
    usage snippets name `repo_id` and whose table and model-index show `metrics` (a flat table such as
    `{"test R@1": 24.8}`) on `dataset` (default: the card's). The folder's own card (training source, conversion
    notes) is kept and updated; a folder without one gets a new card. With `onnx`, the retrieval stages are first
    exported into the folder's `onnx/`, fp32 and int8 (`aptm.export.export_onnx`; needs `pip install
    aptm-hf[onnx]`), and pushed with it. Returns the commit info."""
    folder = Path(folder)
    for name in ("config.json", "processor_config.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: save the model and processor with save_pretrained first")
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"{folder} has no safetensors weights")
    saved = json.loads((folder / "config.json").read_text())
    if "custom_pipelines" not in saved and "APTMForImageClassification" not in saved.get("architectures", []):
        add_pipelines(folder)  # a retrieval checkpoint saved before the pipelines existed
    if onnx:
        from .export import export_onnx
        from .factory import load_checkpoint

        export_onnx(load_checkpoint(folder, device="cpu")[0], folder / "onnx")
    card = folder / "README.md"
    if card.is_file():
        card.write_text(card_for_push(card.read_text(), repo_id, metrics, dataset))
    else:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        write_model_card(folder, config, processor, repo=repo_id, metrics=metrics, dataset=dataset,
                         source="Published with the aptm-hf tools.")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             ignore_patterns=["checkpoint-*", "*.pt", "rng_state*", "optimizer*", "scheduler*"])


def copy_library_files(folder, files):
    """Copy the package's modules `files` (pairs of (path in `folder`, path in the package), such as
    `SPACE_LIBRARY_FILES`) into the Hub artefact `folder`, so that it runs from its own files; a copy already equal
    to the package's file is left untouched. Returns the paths written or checked."""
    folder = Path(folder)
    paths = []
    for target, source in files:
        path, data = folder / target, (LIBRARY / source).read_bytes()
        if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
            path.unlink(missing_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        paths.append(path)
    return paths


def upload_artefact(folder, repo_id, files, commit_message, token=None, private=False):
    """Create the Space `repo_id` and upload `folder` to it with the package's modules `files` copied in first."""
    copy_library_files(folder, files)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    return api, api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                                  commit_message=commit_message, ignore_patterns=["__pycache__/*", "*.pyc"])


def push_metric(folder, repo_id, private=False, token=None, commit_message="Upload metric"):
    """Publish an `evaluate` metric folder (`metrics/<name>`: module, README with the Space front matter, `app.py`,
    `requirements.txt`, and `aptm_metrics.py`, the package's `aptm/metrics.py` copied in) as a metric Space, so that
    `evaluate.load(repo_id)` loads it. Returns the commit info."""
    folder = Path(folder)
    module = folder / f"{folder.name}.py"
    for path in (module, folder / "README.md", folder / "app.py", folder / "requirements.txt"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: not a metric folder")
    if repo_id.split("/")[-1] != folder.name:
        raise ValueError(f"evaluate loads `{repo_id}` from `{repo_id.split('/')[-1]}.py`: name the Space "
                         f"`<owner>/{folder.name}`")
    return upload_artefact(folder, repo_id, METRIC_LIBRARY_FILES, commit_message, token, private)[1]


def push_space(folder, repo_id, model_id, gallery_id, private=False, token=None, commit_message="Upload the Space"):
    """Publish the Gradio Space folder (`space/`: `app.py`, `README.md` with the Space front matter,
    `requirements.txt` of public packages, `aptm_parts/` with the package's standalone modules copied in) to the Space
    `repo_id`, with its variables `APTM_MODEL` (a model repo id) and `APTM_GALLERY` (a dataset repo id). Returns the
    commit info."""
    folder = Path(folder)
    for name in ("app.py", "README.md", "requirements.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: not a Space folder")
    api, info = upload_artefact(folder, repo_id, SPACE_LIBRARY_FILES, commit_message, token, private)
    api.add_space_variable(repo_id, "APTM_MODEL", model_id, description="the APTM checkpoint's model repo id")
    api.add_space_variable(repo_id, "APTM_GALLERY", gallery_id, description="the gallery's dataset repo id")
    return info
