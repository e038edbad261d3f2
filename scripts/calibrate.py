"""Calibrate a checkpoint's image-text match probability: a temperature for its ITM head fitted on held-out pairs of
a dataset's validation split (each caption with an image of its person and with another person's), its expected
calibration error (ECE, 10 bins) measured before and after on the test split, written into the checkpoint as
`calibration.json` (read by `aptm.footage.FootageIndex` for `--min-probability` and standing queries) with a
reliability diagram beside it.

    python scripts/calibrate.py outputs/quickstart/checkpoint --dataset procedural --data-dir data/procedural
"""

import argparse
from pathlib import Path

from aptm.factory import load_checkpoint
from aptm.retrieval import RetrievalEngine
from aptm.retrieval.calibration import Calibration, held_out_pairs, pair_margins, reliability_diagram
from datasets_scripts import NAMES, load_aptm_dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint folder (calibration.json is written into it)")
    parser.add_argument("--dataset", required=True, choices=NAMES)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fit-split", default="validation", help="split whose pairs the temperature is fitted on")
    parser.add_argument("--measure-split", default="test", help="split whose pairs the ECE is measured on")
    parser.add_argument("--negatives", type=int, default=1, help="non-matching images per caption")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    data = load_aptm_dataset(args.dataset, data_dir=args.data_dir)
    model, processor = load_checkpoint(args.checkpoint)
    engine = RetrievalEngine(model, processor, batch_size=args.batch_size, progress=False)
    margins, labels = {}, {}
    for split in (args.fit_split, args.measure_split):
        if f"{split}_queries" not in data:
            parser.error(f"{args.dataset} has no {split} split (splits: {sorted(data)})")
        texts, images, labels[split] = held_out_pairs(data[f"{split}_queries"], data[f"{split}_gallery"],
                                                      args.negatives)
        margins[split] = pair_margins(engine, texts, images).numpy()
    calibration = Calibration.fit(margins[args.fit_split], labels[args.fit_split],
                                  data=f"{args.dataset}: fitted on {args.fit_split}, measured on {args.measure_split}")
    before, after = calibration.measure(margins[args.measure_split], labels[args.measure_split])
    path = calibration.save(args.checkpoint)
    diagram = reliability_diagram(before, after, Path(args.checkpoint) / "reliability.png")
    print(f"temperature {calibration.temperature:.3f} from {calibration.pairs} pairs ({calibration.matches} matches); "
          f"ECE on {args.measure_split}: {calibration.ece_before:.4f} before, {calibration.ece_after:.4f} after")
    print(f"wrote {path} and {diagram}")
    return calibration


if __name__ == "__main__":
    main()
