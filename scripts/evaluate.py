"""Evaluate a checkpoint (folder or Hub id) on a dataset: prints the metric table, writes metrics.json and the
ranked-gallery grid. Under `torchrun` (or `accelerate launch`) each process evaluates its share of the gallery and
queries, with the metrics of one process (the first process prepares the data, prints and writes).

    python scripts/evaluate.py --model outputs/quickstart/checkpoint --dataset procedural --data-dir data/procedural
    python scripts/evaluate.py --model aptm-cuhk --dataset cuhk-pedes --data-dir /data/CUHK-PEDES --world-size 4
    torchrun --nproc_per_node 4 scripts/evaluate.py --model aptm-cuhk --dataset cuhk-pedes --data-dir /data/CUHK-PEDES
"""

import argparse

from aptm.evaluation import evaluate_dataset
from aptm.factory import load_checkpoint
from aptm.retrieval import ATTRIBUTE_SCORINGS, FUSIONS, PRECISIONS
from aptm.retrieval.sharding import launched_state
from datasets_scripts import NAMES, load_aptm_dataset


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--dataset", required=True, choices=NAMES)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--k", type=int, help="candidates re-ranked with ITM (default: the model's k_test)")
    parser.add_argument("--fusion", default="aptm", choices=FUSIONS)
    parser.add_argument("--world-size", type=int, default=1,
                        help="reproduce the original evaluator's score fusion on that many GPUs (the paper used 4), "
                        "whatever the number of processes this runs on")
    parser.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction,
                        help="also score each gallery image mirrored, MRA's evaluation (default: the model's "
                        "test_time_flip, on for converted MRA checkpoints)")
    parser.add_argument("--attribute-scoring", default="itm", choices=ATTRIBUTE_SCORINGS,
                        help="score attribute prompts with the ITM head (the paper's) or the IAC similarities")
    parser.add_argument("--image-to-text", action="store_true",
                        help="also the image-to-text metrics (i2t_ keys), from the transposed score matrix")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="of the ITM re-ranking: fp32, bf16 (autocast, approximate), int8 (CPU, approximate) or "
                        "exact-fast (low precision, then fp32 where the top --exact-top is decided: fp32's top)")
    parser.add_argument("--exact-top", type=int, default=10, help="the ranks exact-fast keeps equal to fp32's")
    parser.add_argument("--output-dir", default="outputs/evaluation")
    args = parser.parse_args(argv)

    state = launched_state()
    with state.main_process_first():  # one process prepares the dataset cache (and downloads), then the others
        model, processor = load_checkpoint(args.model, device=state.device)
        data = load_aptm_dataset(args.dataset, data_dir=args.data_dir)
    results = evaluate_dataset(model, processor, data, args.dataset, args.split, args.output_dir, k=args.k,
                               fusion=args.fusion, world_size=args.world_size, test_time_flip=args.test_time_flip,
                               batch_size=args.batch_size,
                               attribute_scoring=args.attribute_scoring, image_to_text=args.image_to_text,
                               precision=args.precision, exact_top=args.exact_top, progress=state.is_main_process)
    if state.num_processes > 1:
        state.wait_for_everyone()  # tear down together: gloo can abort a process that leaves while another works
        state.destroy_process_group()
    if not state.is_main_process:
        return results
    for task in ("retrieval", "attributes"):
        if task in results:
            print(f"\n{task} ({args.dataset} {args.split})")
            print("  ".join(f"{key:>9}" for key in results[task]))
            print("  ".join(f"{value:9.2f}" for value in results[task].values()))
    print(f"\nwrote {args.output_dir}/metrics.json" + (" and retrieval_grid.png" if "retrieval" in results else ""))
    return results


if __name__ == "__main__":
    main()
