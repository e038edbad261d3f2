"""Convert a dataset built by the project's builders to Parquet with the images embedded, and push it to the Hub
(or only write the Parquet files with --parquet-dir).

    python scripts/publish_dataset.py --dataset procedural --data-dir data/procedural --repo-id me/procedural-pedestrians
"""

import argparse

from datasets_scripts import NAMES, load_aptm_dataset
from datasets_scripts.publish import push, to_parquet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=NAMES)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repo-id", help="dataset repo to push to")
    parser.add_argument("--parquet-dir", help="also (or only) write <split>.parquet files here")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    if not args.repo_id and not args.parquet_dir:
        parser.error("pass --repo-id, --parquet-dir or both")
    data = load_aptm_dataset(args.dataset, data_dir=args.data_dir)
    if args.parquet_dir:
        for path in to_parquet(data, args.parquet_dir):
            print(f"wrote {path}")
    if args.repo_id:
        print(f"pushed to {args.repo_id}: {push(data, args.repo_id, private=args.private)}")


if __name__ == "__main__":
    main()
