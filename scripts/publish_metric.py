"""Publish an `evaluate` metric folder as a metric Space on the Hub, loadable with `evaluate.load("<owner>/<name>")`.

    python scripts/publish_metric.py metrics/text_person_retrieval my-name/text_person_retrieval
"""

import argparse

from aptm.hub import push_metric


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="metric folder (metrics/text_person_retrieval or metrics/pedestrian_attribute)")
    parser.add_argument("repo_id", help="Space to create or update; its name must be the folder's")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    args = parser.parse_args(argv)
    print(f"pushed {args.folder} to the Space {args.repo_id}: {push_metric(args.folder, args.repo_id, args.private, args.token)}")


if __name__ == "__main__":
    main()
