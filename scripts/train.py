"""Train APTM with a recipe: MALS pre-training, retrieval fine-tuning (CUHK-PEDES, ICFG-PEDES, RSTPReid) or PA-100K
attribute fine-tuning, or the tiny CPU recipe on the procedural pedestrians. Every argument of
`aptm.training.arguments` (and of `transformers.TrainingArguments`) can be given; the command line overrides the
recipe, and `--task`/`--dataset` without `--recipe` pick the bundled one.

    python scripts/train.py --recipe tiny_procedural --data_dir data/procedural --output_dir out/tiny
    torchrun --nproc_per_node 4 scripts/train.py --task retrieval --dataset cuhk-pedes --data_dir /data/CUHK-PEDES \\
        --init path/to/mals-pretrained --output_dir out/cuhk
"""

import json
import logging

from aptm.training import parse_training_arguments, run_training


def main(argv=None):
    arguments = parse_training_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer, metrics = run_training(*arguments)
    if trainer.is_world_process_zero():
        print(json.dumps({"output_dir": trainer.args.output_dir, "validation": metrics}, indent=2))


if __name__ == "__main__":
    main()
