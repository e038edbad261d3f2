"""Training-time image augmentation: the original's RandAugment (each drawn op skipped half of the time) and the
whole train transform."""

import numpy as np
import torch
from PIL import Image

from aptm.data.image_transforms import OriginalRandAugment, train_transform


class BrightnessOnly(OriginalRandAugment):
    """The original's brightness op alone (factor 1.36 at magnitude 7), so the output level counts the ops applied."""

    _AUGMENTATION_SPACE = {"Brightness": OriginalRandAugment._AUGMENTATION_SPACE["Brightness"]}


def test_each_drawn_op_is_applied_with_probability_one_half():
    augment = BrightnessOnly(num_ops=2, magnitude=7, num_magnitude_bins=11)
    image = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    levels = torch.tensor([100.0, 136.0, 185.0])  # after 0, 1 and 2 brightness ops
    torch.manual_seed(0)
    applied = [int((levels - float(augment(image)[0, 0, 0])).abs().argmin()) for _ in range(4000)]
    frequencies = np.bincount(applied, minlength=3) / len(applied)
    # binomial(2, 0.5); with every drawn op applied (torchvision's RandAugment) all 4000 would be 2
    assert np.abs(frequencies - [0.25, 0.5, 0.25]).max() < 0.03, frequencies


def test_op_probability_one_applies_every_drawn_op():
    augment = BrightnessOnly(num_ops=2, magnitude=7, num_magnitude_bins=11, op_probability=1.0)
    torch.manual_seed(0)
    outputs = {int(augment(torch.full((3, 4, 4), 100, dtype=torch.uint8))[0, 0, 0]) for _ in range(50)}
    assert len(outputs) == 1 and outputs.pop() > 180


def test_train_transform_shapes_and_randomness():
    transform = train_transform((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 80, 3), dtype=np.uint8))
    torch.manual_seed(0)
    first, second = transform(image), transform(image)
    assert first.shape == (3, 384, 128) and first.dtype == torch.float32 and not torch.equal(first, second)
