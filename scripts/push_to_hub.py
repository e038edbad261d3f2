"""Push a converted or trained APTM checkpoint folder (model, processor, remote code) to the Hugging Face Hub with a
model card (evaluation table, usage snippet).

    python scripts/push_to_hub.py outputs/quickstart/checkpoint my-name/aptm-tiny-procedural \\
        --metrics outputs/quickstart/metrics.json
    python scripts/push_to_hub.py outputs/quickstart/checkpoint my-name/aptm-tiny-procedural --onnx  # + onnx/ files
"""

import argparse
import json

from aptm.hub import push_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("repo_id")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--metrics", help="metrics.json of scripts/evaluate.py, shown in the model card")
    parser.add_argument("--split", default="test", help="the split the metrics were measured on")
    parser.add_argument("--dataset", help="dataset the metrics were measured on (default: the model card's)")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")
    parser.add_argument("--onnx", action="store_true", help="export the retrieval stages as ONNX, fp32 and int8, into "
                                                            "the folder's onnx/ and push them too (pip install "
                                                            "aptm-hf[onnx])")
    args = parser.parse_args(argv)
    metrics = None
    if args.metrics:
        results = json.load(open(args.metrics))
        metrics = {f"{args.split} {key}": round(value, 2) for task in ("retrieval", "attributes")
                   for key, value in results.get(task, {}).items()}
    info = push_checkpoint(args.folder, args.repo_id, private=args.private, token=args.token, metrics=metrics,
                           dataset=args.dataset, onnx=args.onnx)
    print(f"pushed {args.folder} to {args.repo_id}: {info}")


if __name__ == "__main__":
    main()
