"""The evaluations that retrieval/test_sharded_evaluation.py runs on one process and, through
`sharded_evaluation_worker.py`, on two: a tiny model on generated splits whose sizes two processes do not divide
(11 gallery images, 9 queries, 7 labelled images)."""

from unittest import mock

import datasets
import numpy as np
import torch

import aptm
from aptm.evaluation import evaluate_attributes, evaluate_retrieval
from aptm.retrieval import Encoder, RetrievalEngine

from helpers.images import person_image
from helpers.models import tiny_config

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


def evaluate_all(sharded):
    """Every evaluation: the gallery index and the retrieval of `evaluate_retrieval` (both directions) with how many
    images and texts this process encoded, `RetrievalEngine.evaluate` of each of `EVALUATIONS` (metrics and final
    score matrix), and the attribute metrics."""
    torch.manual_seed(0)
    model, processor = aptm.APTMModel(tiny_config()).eval(), aptm.build_processor()
    gallery, queries, labelled = splits()
    encode_images, encode_texts = Encoder.encode_images, Encoder.encode_text_batch
    with mock.patch.object(Encoder, "encode_images", autospec=True, side_effect=encode_images) as images, \
            mock.patch.object(Encoder, "encode_text_batch", autospec=True, side_effect=encode_texts) as texts:
        metrics, scores, _, index = evaluate_retrieval(model, processor, gallery, queries, image_to_text=True,
                                                       sharded=sharded, **ENGINE)
    results = {"index": {"image_features": index.image_features, "image_embeds": index.image_embeds,
                         "person_ids": index.person_ids},
               "paths": index.paths,
               "encoded": {"images": sum(len(call.args[1]) for call in images.call_args_list),
                           "texts": sum(len(call.args[1]) for call in texts.call_args_list)},
               "evaluate_retrieval": {"metrics": metrics, "scores": scores.matrix()}}
    for name, (options, ties) in EVALUATIONS.items():
        engine = RetrievalEngine(model, processor, sharded=sharded, **ENGINE, **options)
        metrics, scores = engine.evaluate(queries["caption"], queries["person_id"], index, ties=ties)
        results[name] = {"metrics": metrics, "scores": scores.matrix()}
    results["attributes"] = evaluate_attributes(model, processor, labelled, batch_size=3, progress=False,
                                                sharded=sharded)
    return results
