"""Train APTM with a recipe: MALS pre-training, retrieval fine-tuning (CUHK-PEDES, ICFG-PEDES, RSTPReid) or PA-100K
attribute fine-tuning, or the tiny CPU recipe on the procedural pedestrians.

    python scripts/train.py --config recipes/tiny_procedural.json --data-dir data/procedural --output-dir out/tiny
    torchrun --nproc_per_node 4 scripts/train.py --task retrieval --dataset cuhk-pedes --data-dir /data/CUHK-PEDES \\
        --init path/to/mals-pretrained --output-dir out/cuhk
"""

import argparse
import json
import logging
from pathlib import Path

from aptm.pipeline import run_training
from aptm.training import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DEFAULT_RECIPES = {("pretrain", "mals"): "pretrain_mals.json", ("retrieval", "cuhk-pedes"): "retrieval_cuhk.json",
                   ("retrieval", "icfg-pedes"): "retrieval_icfg.json", ("retrieval", "rstpreid"): "retrieval_rstp.json",
                   ("attributes", "pa100k"): "attributes_pa100k.json", ("retrieval", "procedural"): "tiny_procedural.json"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="recipe json (default: the bundled recipe of --task and --dataset)")
    parser.add_argument("--task", choices=["pretrain", "retrieval", "attributes"])
    parser.add_argument("--dataset", help="dataset name of load_aptm_dataset (overrides the recipe's)")
    parser.add_argument("--data-dir", required=True, help="folder of the dataset")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--num-identities", type=int, help="procedural dataset only: identities to generate")
    parser.add_argument("--init", help="checkpoint folder or Hub id to start from (e.g. the MALS-pretrained model)")
    parser.add_argument("--swin", help="Swin checkpoint (.pth/.safetensors) for pre-training from scratch")
    parser.add_argument("--bert", help="BERT checkpoint folder for pre-training from scratch")
    parser.add_argument("--resume", nargs="?", const=True, help="resume from the last (or the given) checkpoint")
    parser.add_argument("--epochs", type=float, dest="num_train_epochs")
    parser.add_argument("--max-steps", type=int, dest="max_steps")
    parser.add_argument("--batch-size", type=int, dest="per_device_train_batch_size", help="per process")
    parser.add_argument("--gradient-accumulation-steps", type=int, dest="gradient_accumulation_steps")
    parser.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast")
    parser.add_argument("--fp16", action="store_true", default=None, help="float16 autocast (GPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.config is None:
        if (args.task, args.dataset) not in DEFAULT_RECIPES:
            parser.error(f"no bundled recipe for --task {args.task} --dataset {args.dataset}; pass --config")
        args.config = RECIPES / DEFAULT_RECIPES[(args.task, args.dataset)]
    recipe = load_recipe(args.config)
    if args.dataset:
        recipe["dataset"] = args.dataset
    if args.num_identities:
        recipe.setdefault("dataset_options", {})["num_identities"] = args.num_identities
    overrides = {key: getattr(args, key) for key in ("num_train_epochs", "max_steps", "per_device_train_batch_size",
                                                     "gradient_accumulation_steps", "bf16", "fp16", "seed")}
    trainer, metrics = run_training(recipe, args.data_dir, args.output_dir, init=args.init, swin=args.swin,
                                    bert=args.bert, resume=args.resume, gradient_checkpointing=args.gradient_checkpointing,
                                    **overrides)
    if trainer.is_world_process_zero():
        print(json.dumps({"output_dir": args.output_dir, "validation": metrics}, indent=2))


if __name__ == "__main__":
    main()
