"""The evaluations that retrieval/test_sharded_evaluation.py runs on one process and, through
`sharded_evaluation_worker.py`, on two: a tiny model on generated splits whose sizes two processes do not divide
(11 gallery images, 9 queries, 7 labelled images)."""

from contextlib import contextmanager
from unittest import mock

import datasets
import numpy as np
import torch

import aptm
from aptm.evaluation import AttributeEvaluator, RetrievalEvaluator, evaluate_attributes, evaluate_retrieval
from aptm.retrieval import Encoder, RetrievalEngine
from aptm.training import APTMTrainer, APTMTrainingArguments
from retrieval_aptm import FusedScores

from helpers.images import person_image
from helpers.models import tiny_config, tiny_model

GALLERY, QUERIES, LABELLED = 11, 9, 7
CAPTIONS = ["a man in a red jacket", "a woman with a black bag and blue jeans walking down the street", "a child",
            "someone wearing a green coat and white shoes", "a person with long hair", "an old man with a hat",
            "a tall woman in a white dress", "a boy carrying a yellow backpack", "a man on a phone"]
ENGINE = {"k": 4, "batch_size": 4, "query_batch_size": 3, "progress": False}
# engine options and the tie policy of each evaluation of the same index
EVALUATIONS = {"aptm": ({}, "stable"), "aptm emulating 4 GPUs": ({"world_size": 4}, "stable"),
               "itm": ({"fusion": "itm"}, "stable"), "cosine, pessimistic ties": ({"fusion": "cosine"}, "pessimistic")}


def splits():
    """Gallery, queries and labelled images as `datasets.Dataset`s."""
    gallery = datasets.Dataset.from_dict({"image": [person_image(i) for i in range(GALLERY)],
                                          "person_id": [i // 2 for i in range(GALLERY)],
                                          "image_path": [f"{i}.jpg" for i in range(GALLERY)]})
    queries = datasets.Dataset.from_dict({"caption": CAPTIONS, "person_id": [i % 6 for i in range(QUERIES)]})
    labels = np.random.default_rng(0).integers(-1, 2, (LABELLED, len(aptm.build_processor().attribute_names)))
    labelled = datasets.Dataset.from_dict({"image": [person_image(20 + i) for i in range(LABELLED)],
                                           "attribute_labels": labels.tolist()})
    return gallery, queries, labelled


@contextmanager
def counting_encoded():
    """Within the block, count the images and texts this process encodes, and the gallery images whose image-to-text
    score columns it computes, into the dict it yields."""
    counts = {"images": 0, "texts": 0, "i2t columns": 0}
    methods = {"images": Encoder.encode_images, "texts": Encoder.encode_text_batch}

    def counted(kind):
        def encode(encoder, inputs):
            counts[kind] += len(inputs)
            return methods[kind](encoder, inputs)
        return encode

    def counted_columns(scores, columns):
        block = columns_of(scores, columns)
        counts["i2t columns"] += block.shape[1]
        return block

    columns_of = FusedScores.columns
    with mock.patch.object(Encoder, "encode_images", counted("images")), \
            mock.patch.object(Encoder, "encode_text_batch", counted("texts")), \
            mock.patch.object(FusedScores, "columns", counted_columns):
        yield counts


def evaluate_all(sharded, folder):
    """Every evaluation: the gallery index and the retrieval of `evaluate_retrieval` (both directions) with how many
    images and texts this process encoded and image-to-text columns it scored, `RetrievalEngine.evaluate` of each of
    `EVALUATIONS` (metrics and final score matrix), the attribute metrics, and the validation metrics of
    `APTMTrainer.evaluate` (sharded whenever `torch.distributed` is initialised with several processes; its output
    folder is `folder`) with how many images and texts it encoded."""
    torch.manual_seed(0)
    model, processor = aptm.APTMModel(tiny_config()).eval(), aptm.build_processor()
    gallery, queries, labelled = splits()
    with counting_encoded() as encoded:
        metrics, scores, _, index = evaluate_retrieval(model, processor, gallery, queries, image_to_text=True,
                                                       sharded=sharded, **ENGINE)
    results = {"index": {"image_features": index.image_features, "image_embeds": index.image_embeds,
                         "person_ids": index.person_ids},
               "paths": index.paths, "encoded": encoded,
               "evaluate_retrieval": {"metrics": metrics, "scores": scores.matrix()}}
    for name, (options, ties) in EVALUATIONS.items():
        engine = RetrievalEngine(model, processor, sharded=sharded, **ENGINE, **options)
        metrics, scores = engine.evaluate(queries["caption"], queries["person_id"], index, ties=ties)
        results[name] = {"metrics": metrics, "scores": scores.matrix()}
    results["attributes"] = evaluate_attributes(model, processor, labelled, batch_size=3, progress=False,
                                                sharded=sharded)
    trainer = APTMTrainer(model=tiny_model(), args=APTMTrainingArguments(output_dir=str(folder), report_to=[]),
                          evaluators=[RetrievalEvaluator(processor, gallery, queries, **ENGINE),
                                      AttributeEvaluator(processor, labelled, batch_size=3)])
    with counting_encoded() as encoded:
        results["trainer"] = trainer.evaluate()
    results["trainer encoded"] = encoded
    return results
