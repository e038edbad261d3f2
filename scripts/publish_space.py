"""Publish the demo to the Hub in one command: the model (a checkpoint folder, pushed with its pipelines and model
card), a gallery dataset (Parquet with the images embedded) and the Gradio Space (`space/`) whose variables name the
two. A model or gallery that is already on the Hub is named by id instead. The package's modules the Space runs
(`aptm/images.py`, `aptm/footage/`) are copied into `space/aptm_parts/` before the upload, so the Space runs from its
own files.

    python scripts/publish_space.py --model outputs/quickstart/checkpoint --model-repo my-name/aptm-tiny \\
        --dataset procedural --data-dir data/procedural --gallery-repo my-name/aptm-gallery --space-repo my-name/aptm-demo
"""

import argparse
import json
from pathlib import Path

from datasets import DatasetDict

from aptm.hub import push_checkpoint, push_space
from datasets_scripts import NAMES, load_aptm_dataset

SPACE = Path(__file__).resolve().parents[1] / "space"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder to push, or a model repo id already pushed")
    parser.add_argument("--model-repo", help="model repo to push the folder to (needed with a folder)")
    parser.add_argument("--dataset", choices=NAMES, help="dataset whose gallery split to publish")
    parser.add_argument("--data-dir", help="folder of --dataset")
    parser.add_argument("--dataset-options", default="{}", help="JSON object of builder options")
    parser.add_argument("--split", default="test_gallery", help="the split published as the gallery")
    parser.add_argument("--gallery-repo", required=True, help="dataset repo of the gallery (pushed with --dataset)")
    parser.add_argument("--space-repo", required=True)
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    model_id = args.model
    if Path(args.model).is_dir():
        if not args.model_repo:
            parser.error("--model is a folder: pass --model-repo to push it to")
        push_checkpoint(args.model, args.model_repo, private=args.private)
        model_id = args.model_repo
        print(f"pushed the model {args.model} to {model_id}")
    if args.dataset:
        if not args.data_dir:
            parser.error("--dataset needs --data-dir")
        gallery = load_aptm_dataset(args.dataset, data_dir=args.data_dir, **json.loads(args.dataset_options))[args.split]
        keep = [column for column in ("image", "person_id", "caption") if column in gallery.column_names]
        DatasetDict({"gallery": gallery.select_columns(keep)}).push_to_hub(args.gallery_repo, private=args.private)
        print(f"pushed {gallery.num_rows} gallery images of {args.dataset} to the dataset {args.gallery_repo}")
    push_space(SPACE, args.space_repo, model_id, args.gallery_repo, private=args.private)
    print(f"pushed the Space {args.space_repo} (APTM_MODEL={model_id}, APTM_GALLERY={args.gallery_repo})")


if __name__ == "__main__":
    main()
