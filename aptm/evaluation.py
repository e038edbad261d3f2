"""Evaluate a checkpoint on a dataset's test (or validation) split: retrieval metrics with the paper's procedure,
attribute metrics, and the pictures (ranked-gallery grid)."""

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor

from .augment import clean_caption
from .metrics import attribute_metrics
from .plotting import ranked_gallery_grid
from .retrieval import RetrievalEngine, SearchResult


def load_checkpoint(path_or_id, device=None):
    """Model (eval mode) and processor of a checkpoint folder or Hub id, through the Auto classes."""
    model = AutoModel.from_pretrained(path_or_id, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(path_or_id, trust_remote_code=True)
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")), processor


def evaluate_retrieval(model, processor, gallery, queries, dataset=None, grid_path=None, grid_queries=6, **engine_options):
    """Retrieval metrics on a gallery/queries pair of splits; optionally a PNG of the top-10 of the first
    `grid_queries` queries. Returns `(metrics, score_matrix, engine, index)`."""
    engine = RetrievalEngine(model, processor, **engine_options)
    index = engine.encode_gallery(gallery, person_ids=gallery["person_id"], paths=gallery["image_path"])
    texts = [clean_caption(c, dataset) for c in queries["caption"]]
    metrics, scores = engine.evaluate(texts, queries["person_id"], index)
    if grid_path is not None:
        rows = np.linspace(0, len(texts) - 1, min(grid_queries, len(texts))).astype(int).tolist()
        results = []
        for row in rows:
            order = scores[row].argsort(descending=True, stable=True)[:10]
            results.append(SearchResult(texts[row], order.tolist(), scores[row, order].tolist(), [], []))
        ranked_gallery_grid(results, DatasetImages(gallery), grid_path, query_ids=[queries["person_id"][r] for r in rows],
                            gallery_ids=gallery["person_id"])
    return metrics, scores, engine, index


class DatasetImages:
    """Index a dataset's images lazily (a gallery can be too large to decode at once)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, index):
        return self.dataset[int(index)]["image"]


def evaluate_attributes(model, processor, dataset, batch_size=32, attribute_scoring="itm"):
    """Attribute metrics (mA, accuracy, precision, recall, F1, per-attribute mA) of images with labels, the prompts
    scored by `attribute_scoring` (`"itm"`, the paper's, or `"contrastive"`; see `RetrievalEngine`)."""
    engine = RetrievalEngine(model, processor, batch_size=batch_size, attribute_scoring=attribute_scoring)
    predictions, _ = engine.recognize_attributes(dataset["image"])
    return attribute_metrics(predictions.numpy(), dataset["attribute_labels"])


def attribute_split(data, split="test"):
    """The split of `data` that holds attribute labels for `split` (`attributes_test` of a retrieval dataset, or the
    split itself of an attribute dataset), or None."""
    attributes = data.get(f"attributes_{split}")
    if attributes is None and split in data and "attribute_labels" in data[split].column_names:
        attributes = data[split]
    return attributes


def evaluate_dataset(model, processor, data, dataset_name, split="test", output_dir=None, **engine_options):
    """Every metric a dataset supports on `split` (`test` or `validation`); writes `metrics.json` and
    `retrieval_grid.png` to `output_dir` when given."""
    output_dir = Path(output_dir) if output_dir else None
    if output_dir:
        output_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    if f"{split}_gallery" in data:
        metrics, _, _, _ = evaluate_retrieval(
            model, processor, data[f"{split}_gallery"], data[f"{split}_queries"], dataset=dataset_name,
            grid_path=output_dir / "retrieval_grid.png" if output_dir else None, **engine_options)
        results["retrieval"] = metrics
    attributes = attribute_split(data, split)
    if attributes is not None:
        if len(attributes[0]["attribute_labels"]) != len(processor.attribute_names):
            raise ValueError(f"the dataset has {len(attributes[0]['attribute_labels'])} attribute labels, the "
                             f"checkpoint's processor {len(processor.attribute_names)}")
        metrics = evaluate_attributes(model, processor, attributes, engine_options.get("batch_size", 32),
                                      engine_options.get("attribute_scoring", "itm"))
        results["attributes"] = {k: v for k, v in metrics.items() if k != "per_attribute_mA"}
        results["attributes_per_attribute_mA"] = dict(zip(processor.attribute_names, metrics["per_attribute_mA"]))
    if not results:
        raise ValueError(f"{dataset_name} has no {split} split to evaluate (splits: {list(data)})")
    if output_dir:
        (output_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    return results
