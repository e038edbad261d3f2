"""The evaluation protocol on dataset splits, one path for every caller (the trainer's validation, the evaluate CLI,
the quickstart): retrieval metrics with the paper's procedure on a gallery/queries pair, attribute metrics on labelled
images, and every metric a dataset supports, with the ranked-gallery picture. Under a launcher (`torch.distributed`
initialised with several processes) each process computes its share and every process gets the metrics of one process
(`sharded=False` computes everything on each); files are written by the first process only."""

import json
from pathlib import Path

import numpy as np
import torch

from .data.captions import clean_caption
from .figures import DatasetImages, ranked_gallery_grid
from .metrics import attribute_metrics
from .retrieval import AttributeRecognizer, RetrievalEngine, SearchResult
from .retrieval.sharding import ProcessShards


def evaluate_retrieval(model, processor, gallery, queries, dataset=None, grid_path=None, grid_queries=6,
                       image_to_text=False, **engine_options):
    """Retrieval metrics on a gallery/queries pair of splits (captions cleaned as the original for `dataset`), with
    `image_to_text` the other direction too (`i2t_` keys, streamed in gallery chunks); optionally a PNG of the
    top-10 of `grid_queries` queries spread over the split (only those score rows are computed). `engine_options` go
    to `RetrievalEngine` (with `sharded`, whether gallery encoding and evaluation are split across processes). Memory
    grows with queries x k plus the gallery (see `RetrievalEngine.evaluate`). Returns `(metrics, scores, engine,
    index)`, `scores` a `retrieval_aptm.FusedScores` (`scores.rows(queries)`), the same on every process."""
    engine = RetrievalEngine(model, processor, **engine_options)
    index = engine.encode_gallery_sharded(gallery, person_ids=gallery["person_id"], paths=gallery["image_path"])
    texts = [clean_caption(c, dataset) for c in queries["caption"]]
    metrics, scores = engine.evaluate(texts, queries["person_id"], index, image_to_text=image_to_text)
    if grid_path is not None and engine.processes.rank == 0:
        rows = np.linspace(0, len(texts) - 1, min(grid_queries, len(texts))).astype(int).tolist()
        results = []
        for row, row_scores in zip(rows, scores.rows(rows)):
            order = row_scores.argsort(descending=True, stable=True)[:10]
            results.append(SearchResult(texts[row], order.tolist(), row_scores[order].tolist(), [], []))
        ranked_gallery_grid(results, DatasetImages(gallery), grid_path, query_ids=[queries["person_id"][r] for r in rows],
                            gallery_ids=gallery["person_id"])
    return metrics, scores, engine, index


def evaluate_attributes(model, processor, dataset, batch_size=32, scoring="itm", progress=True, sharded=None):
    """Attribute metrics (mA, accuracy, precision, recall, F1, per-attribute mA) of images with labels (a
    `datasets.Dataset`), the prompts scored by `scoring` (`"itm"`, the paper's, or `"contrastive"`; see
    `AttributeRecognizer`), or for the image-only classifier (`APTMForImageClassification`) its own predictions.
    Split across processes as `RetrievalEngine`'s `sharded` says: each predicts a share of the images and the
    predictions are gathered."""
    shards = ProcessShards.of_launch(sharded).over(len(dataset))
    share = dataset.select(shards.share(len(dataset))) if shards.world_size > 1 else dataset
    if hasattr(model, "classify_attributes"):
        predictions = classifier_predictions(model, processor, share, batch_size)
    else:
        recognizer = AttributeRecognizer(model, processor, scoring=scoring, batch_size=batch_size, progress=progress)
        predictions, _ = recognizer.recognize(share["image"])
    return attribute_metrics(shards.gather(predictions).numpy(), dataset["attribute_labels"])


def classifier_predictions(model, processor, dataset, batch_size=32):
    """0/1 predictions `[N, A]` of the image-only classifier on the `image` column of `dataset` (eval mode: the
    BatchNorm running statistics), batch by batch."""
    model.eval()
    predictions = []
    for start in range(0, len(dataset), batch_size):
        pixel_values = processor(images=dataset[start : start + batch_size]["image"])["pixel_values"]
        predictions.append(model.classify_attributes(pixel_values.to(model.device))[0].cpu())
    return torch.cat(predictions)


def attribute_split(data, split="test"):
    """The split of `data` that holds attribute labels for `split` (`attributes_test` of a retrieval dataset, or the
    split itself of an attribute dataset), or None."""
    attributes = data.get(f"attributes_{split}")
    if attributes is None and split in data and "attribute_labels" in data[split].column_names:
        attributes = data[split]
    return attributes


def evaluate_dataset(model, processor, data, dataset_name, split="test", output_dir=None, attribute_scoring="itm",
                     **engine_options):
    """Every metric a dataset supports on `split` (`test` or `validation`; attributes only for the image-only
    classifier); writes `metrics.json` and `retrieval_grid.png` to `output_dir` when given (on the first process)."""
    if ProcessShards.of_launch(engine_options.get("sharded")).rank > 0:
        output_dir = None  # the first process writes the files
    output_dir = Path(output_dir) if output_dir else None
    if output_dir:
        output_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    if f"{split}_gallery" in data and not hasattr(model, "classify_attributes"):  # the image-only classifier: no text
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
                                      attribute_scoring, engine_options.get("progress", True),
                                      engine_options.get("sharded"))
        results["attributes"] = {k: v for k, v in metrics.items() if k != "per_attribute_mA"}
        results["attributes_per_attribute_mA"] = dict(zip(processor.attribute_names, metrics["per_attribute_mA"]))
    if not results:
        raise ValueError(f"{dataset_name} has no {split} split to evaluate (splits: {list(data)})")
    if output_dir:
        (output_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


class RetrievalEvaluator:
    """The trainer's validation retrieval metrics: `evaluate_retrieval` of the model being trained on fixed gallery
    and queries splits (`engine_options` as `RetrievalEngine`'s). Under a launcher each process evaluates its share
    (1/N of the work) and every process gets the same metrics."""

    def __init__(self, processor, gallery, queries, dataset=None, **engine_options):
        self.processor, self.gallery, self.queries, self.dataset = processor, gallery, queries, dataset
        self.engine_options = {"progress": False, **engine_options}

    def __call__(self, model):
        metrics, *_ = evaluate_retrieval(model, self.processor, self.gallery, self.queries, dataset=self.dataset,
                                         **self.engine_options)
        return metrics


class AttributeEvaluator:
    """The trainer's validation attribute metrics (mA, accuracy, precision, recall, F1): `evaluate_attributes` of the
    model being trained on a fixed labelled split, each process predicting its share under a launcher."""

    def __init__(self, processor, dataset, batch_size=32, scoring="itm"):
        self.processor, self.dataset, self.batch_size, self.scoring = processor, dataset, batch_size, scoring

    def __call__(self, model):
        metrics = evaluate_attributes(model, self.processor, self.dataset, self.batch_size, self.scoring, progress=False)
        return {key: value for key, value in metrics.items() if key != "per_attribute_mA"}
