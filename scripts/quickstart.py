"""The README's main job: procedural pedestrians -> tiny APTM training (text encoder from the real MiniLM weights) ->
test evaluation of retrieval and attributes -> checkpoint (safetensors, remote code, processor, model card with the
numbers) reloaded through the Auto classes -> example queries, result grids and training curves (about 10 minutes on
2 CPU cores). A real dataset (`--dataset`, `--data-dir`) or an existing checkpoint (`--checkpoint`, e.g. a converted
original one: training is skipped) can replace the defaults.

    python scripts/quickstart.py
    python scripts/quickstart.py --dataset cuhk-pedes --data-dir /data/CUHK-PEDES --checkpoint aptm-cuhk
"""

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from aptm.evaluation import attribute_split, evaluate_attributes, evaluate_dataset, evaluate_retrieval
from aptm.factory import load_checkpoint
from aptm.figures import DatasetImages, ranked_gallery_grid
from aptm.hub import write_model_card
from aptm.metrics import chance_recall_at_1
from aptm.retrieval import GalleryIndex, RetrievalEngine
from aptm.training import recipe_arguments, run_training
from aptm.training.arguments import RECIPES_DIR
from datasets_scripts import NAMES, load_aptm_dataset

RECIPE = RECIPES_DIR / "tiny_procedural.json"
EXAMPLE_QUERIES = (
    "A man in a red t-shirt and black trousers.",
    "A woman with long hair wearing a yellow dress.",
    "A person in a blue jacket and gray pants carrying a black backpack.",
    "A child in a green top and white shorts.",
)
# model-card columns: (summary section, suffix, metrics kept or None for all)
CARD_COLUMNS = (("retrieval", "", None), ("retrieval_dual_encoder", " (dual encoder)", ("R@1", "mAP")),
                ("attributes", "", ("mA",)), ("attributes_dual_encoder", " (dual encoder)", ("mA",)))


def default_threads() -> int:
    """The CPU cores this process may run on: the quickstart's thread count unless told otherwise."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_quickstart(output_dir="outputs/quickstart", dataset="procedural", data_dir=None, checkpoint=None,
                   recipe=RECIPE, seed=None, max_steps=None, dataset_options=None, batch_size=None, threads=None):
    """Run every step with `threads` CPU threads (default: `default_threads()`; a reduction's result can depend on
    how many threads split it, so the count is fixed up front, never chosen by the load); returns the summary (also
    written to `output_dir/summary.json`, with the seconds each phase took)."""
    clock = PhaseClock()
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir or output_dir / "data")
    if dataset != "procedural" and dataset_options is None:
        dataset_options = {}
    arguments = recipe_arguments(recipe, dataset=dataset, data_dir=str(data_dir), dataset_options=dataset_options,
                                 output_dir=str(output_dir / "checkpoint"), seed=seed, max_steps=max_steps,
                                 per_device_train_batch_size=batch_size)
    data_args, evaluation_args, training_args = arguments[1], arguments[3], arguments[4]
    if max_steps is not None:  # a quick look: the matching phase is capped as well
        training_args.matching_steps = min(training_args.matching_steps, max_steps)
    data = load_aptm_dataset(dataset, data_dir=data_dir, **data_args.dataset_options)
    summary = {"dataset": dataset, "data_dir": str(data_dir), "threads": threads}
    clock.lap("data")
    if checkpoint is None:
        checkpoint = output_dir / "checkpoint"
        _, summary["validation"] = run_training(*arguments)
        shutil.copy(checkpoint / "training_curves.png", output_dir / "training_curves.png")
        clock.lap("training")
    model, processor = load_checkpoint(checkpoint)
    clock.lap("checkpoint reload")
    results = evaluate_dataset(model, processor, data, dataset, "test", output_dir, k=evaluation_args.rerank_k,
                               batch_size=64)
    summary.update(results)
    clock.lap("test evaluation")
    engine = index = None
    if "test_gallery" in data:
        # the dual-encoder ranking beside the paper's (ITM re-ranked) one: it shows what the ITM head adds
        summary["retrieval_dual_encoder"], _, engine, index = evaluate_retrieval(
            model, processor, data["test_gallery"], data["test_queries"], dataset=dataset, fusion="cosine", batch_size=64)
        summary["chance_R@1"] = chance_recall_at_1(data["test_queries"]["person_id"], data["test_gallery"]["person_id"])
        clock.lap("dual-encoder retrieval")
    if "attributes" in results:
        # likewise the attributes scored by the IAC similarities beside the paper's ITM prompt scores
        contrastive = evaluate_attributes(model, processor, attribute_split(data, "test"), 64, scoring="contrastive")
        summary["attributes_dual_encoder"] = {k: v for k, v in contrastive.items() if k != "per_attribute_mA"}
        clock.lap("dual-encoder attributes")
    if Path(checkpoint) == output_dir / "checkpoint":
        metrics = {f"test {k}{suffix}": round(v, 2) for section, suffix, keys in CARD_COLUMNS
                   for k, v in summary.get(section, {}).items() if keys is None or k in keys}
        write_model_card(checkpoint, model.config, processor, source=f"Trained by the quickstart (tiny recipe) on the "
                         f"{dataset} dataset; not for real-world use.", metrics=metrics, dataset=dataset)
    if engine is not None:
        summary["examples"] = answer_examples(engine, index, data["test_gallery"], output_dir)
    clock.lap("model card and examples")
    summary["checkpoint"] = str(checkpoint)
    summary["seconds"], summary["phase_seconds"] = clock.total(), clock.seconds
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


class PhaseClock:
    """Wall seconds of consecutive phases: `lap(name)` closes the phase that began at the previous lap."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 1)


def answer_examples(engine: RetrievalEngine, index: GalleryIndex, gallery, output_dir: str | Path,
                    queries: tuple[str, ...] = EXAMPLE_QUERIES) -> list[dict]:
    """Search the test gallery (`gallery`, encoded as `index` by `engine`) with the example queries, re-ranked as
    the paper; writes `example_queries.png`."""
    results = engine.search(list(queries), index, top=10, fusion="aptm")
    ranked_gallery_grid(results, DatasetImages(gallery), Path(output_dir) / "example_queries.png")
    return [{"query": r.query, "top_person_ids": [gallery["person_id"][i] for i in r.indices[:3]],
             "scores": [round(s, 3) for s in r.scores[:3]]} for r in results]


def format_summary(summary):
    """The final table people read."""
    lines = ["", "=" * 64, f"APTM quickstart on {summary['dataset']} ({summary['seconds']} s)", "=" * 64]
    if "retrieval" in summary:
        lines.append("text-to-person retrieval (test identities, never seen in training)")
        lines += _table(summary["retrieval"], summary.get("retrieval_dual_encoder", {}))
        if "chance_R@1" in summary:
            lines.append(f"  chance R@1 {summary['chance_R@1']:5.2f}")
        lines.append("  (APTM: cosine top-k re-ranked by the ITM head, the paper's procedure; dual encoder: cosine only)")
    if "attributes" in summary:
        lines.append("attribute recognition (test images; chance mA 50)")
        lines += _table(summary["attributes"], summary.get("attributes_dual_encoder", {}))
        lines.append("  (APTM: prompts scored by the ITM head, the paper's procedure; dual encoder: IAC similarities)")
    for example in summary.get("examples", []):
        lines.append(f"  {example['query']!r} -> persons {example['top_person_ids']}")
    lines += [f"checkpoint: {summary['checkpoint']}", "pictures: retrieval_grid.png, example_queries.png, "
              "training_curves.png in the output folder", "=" * 64]
    return "\n".join(lines)


def _table(paper, dual):
    """Rows of a metric table: the paper's procedure and, where measured, the dual encoder beside it."""
    lines = [f"  {'':<9} {'APTM':>7}" + (f" {'dual encoder':>13}" if dual else "")]
    for key, value in paper.items():
        lines.append(f"  {key:<9} {value:7.2f}" + (f" {dual[key]:13.2f}" if key in dual else ""))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--dataset", default="procedural", choices=NAMES, help="use a real dataset instead")
    parser.add_argument("--data-dir", help="folder of the dataset (default: generated into the output folder)")
    parser.add_argument("--checkpoint", help="evaluate this checkpoint (e.g. a converted original) instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, help="cap the joint and the matching-phase steps (for a quick look)")
    parser.add_argument("--recipe", default=str(RECIPE), help="training recipe (a file or a bundled recipe's name)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use); the "
                        "same seed and thread count give bit-identical results, loaded machine or idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    summary = run_quickstart(args.output_dir, args.dataset, args.data_dir, args.checkpoint, recipe=args.recipe,
                             seed=args.seed, max_steps=args.max_steps, threads=args.threads)
    print(format_summary(summary))


if __name__ == "__main__":
    main()
