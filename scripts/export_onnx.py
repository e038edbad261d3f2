"""Export a retrieval checkpoint's image encoder, text encoder and fusion + ITM stage as ONNX (dynamic batch and text
length), fp32 and their dynamic int8 quantisation (`*_int8.onnx`), for onnxruntime without torch (`aptm.export.onnx`
describes the files). Needs `onnx` and `onnxruntime` (`pip install aptm-hf[onnx]`).

    python scripts/export_onnx.py outputs/quickstart/checkpoint                 # into the checkpoint's onnx/
    python scripts/export_onnx.py my-name/aptm-tiny-procedural exported/onnx    # a Hub id, into another folder
"""

import argparse
from pathlib import Path

from aptm.export import export_onnx
from aptm.factory import load_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint folder or Hub id")
    parser.add_argument("out", nargs="?", help="folder of the ONNX files (default: the checkpoint folder's onnx/)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="write the fp32 files only")
    args = parser.parse_args(argv)
    if args.out is None and not Path(args.checkpoint).is_dir():
        parser.error(f"{args.checkpoint} is not a local folder: name the output folder")
    model, _ = load_checkpoint(args.checkpoint, device="cpu")
    for path in export_onnx(model, args.out or Path(args.checkpoint) / "onnx", opset=args.opset,
                            int8=args.int8):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
