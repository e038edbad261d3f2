"""Generated pedestrian-like images."""

import numpy as np
from PIL import Image


def person_image(seed, size=(128, 384)):
    """A simple figure (head, torso, legs) in random colours on a noisy background."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
    torso, legs = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    pixels[height // 10 : height // 4, width // 3 : 2 * width // 3] = (230, 190, 160)
    pixels[height // 4 : height // 2 + 20, width // 4 : 3 * width // 4] = torso
    pixels[height // 2 + 20 : 9 * height // 10, width // 4 : 3 * width // 4] = legs
    return Image.fromarray(pixels)


def saved_person_images(folder, count):
    """`count` generated images (seeds 0, 1, ...), also written as `folder/<i>.png` for a subprocess to open."""
    images = [person_image(i) for i in range(count)]
    for i, image in enumerate(images):
        image.save(folder / f"{i}.png")
    return images
