"""The README's main job: procedural pedestrians -> tiny APTM training -> test evaluation -> checkpoint reloaded
through the Auto classes -> example queries, result grids and training curves (about 10 minutes on 2 CPU cores)."""

import argparse
import logging

from aptm.quickstart import format_summary, run_quickstart
from datasets_scripts import NAMES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--dataset", default="procedural", choices=NAMES, help="use a real dataset instead")
    parser.add_argument("--data-dir", help="folder of the dataset (default: generated into the output folder)")
    parser.add_argument("--checkpoint", help="evaluate this checkpoint (e.g. a converted original) instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, help="cap the training steps (for a quick look)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    summary = run_quickstart(args.output_dir, args.dataset, args.data_dir, args.checkpoint, seed=args.seed,
                             max_steps=args.max_steps)
    print(format_summary(summary))


if __name__ == "__main__":
    main()
