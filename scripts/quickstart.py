"""The README's main job: build a tiny APTM, save it, reload it through the Auto classes and search a small
generated gallery with a text query."""

import argparse
import tempfile

import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

import aptm
from configuration_aptm import APTMConfig


def figure(colours, seed):
    """A pedestrian-like figure: head, upper clothes and lower clothes in the given colours."""
    rng = np.random.default_rng(seed)
    pixels = np.full((384, 128, 3), rng.integers(90, 170), dtype=np.uint8)
    pixels[30:90, 44:84] = (225, 190, 160)
    pixels[90:220, 28:100] = colours[0]
    pixels[220:360, 34:94] = colours[1]
    return Image.fromarray(pixels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--query", default="a person in a red top and blue trousers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = aptm.APTMModel(APTMConfig.from_preset("aptm-tiny")).eval()
    processor = aptm.build_processor()
    colours = {"red/blue": ((200, 30, 30), (30, 30, 200)), "green/black": ((30, 160, 40), (20, 20, 20)),
               "white/gray": ((235, 235, 235), (128, 128, 128)), "yellow/brown": ((230, 210, 40), (110, 70, 30))}
    gallery = [figure(pair, seed) for seed, pair in enumerate(colours.values())]
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    inputs = processor(text=args.query, images=gallery)
    with torch.no_grad():
        image_features = model.get_image_features(inputs["pixel_values"])
        text_features = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    scores = (text_features @ image_features.t())[0]
    print(f"query: {args.query!r} (random tiny model: the ranking is not meaningful yet)")
    for rank, index in enumerate(scores.argsort(descending=True).tolist(), 1):
        print(f"{rank}. {list(colours)[index]:<14} cosine {scores[index]:+.4f}")


if __name__ == "__main__":
    main()
