"""Training-time image augmentation of the original recipe (torchvision ops): bicubic resize, horizontal flip,
RandAugment restricted to the original's ops, normalisation and random erasing."""

import torch
from torchvision.transforms import v2

RANDOM_ERASING_P = 0.6  # the original recipes' random-erasing probability


class OriginalRandAugment(v2.RandAugment):
    """torchvision's RandAugment restricted to the original's ten ops and strengths at magnitude 7 of 10: identity,
    autocontrast, equalize, brightness and sharpness (factor 1.36, only brighter/sharper), shear +-0.21, translate
    +-7 px, rotate +-21 degrees. No colour-destroying ops (solarize, posterize, colour), which the original does not
    use either. As the original, each of the `num_ops` drawn ops is applied with probability `op_probability` (0.5)
    and skipped otherwise, so two ops leave a quarter of the images untouched."""

    _AUGMENTATION_SPACE = {
        "Identity": (lambda bins, height, width: None, False),
        "AutoContrast": (lambda bins, height, width: None, False),
        "Equalize": (lambda bins, height, width: None, False),
        "Brightness": (lambda bins, height, width: torch.linspace(0.0, 0.36 / 0.7, bins), False),
        "Sharpness": (lambda bins, height, width: torch.linspace(0.0, 0.36 / 0.7, bins), False),
        "ShearX": (lambda bins, height, width: torch.linspace(0.0, 0.3, bins), True),
        "ShearY": (lambda bins, height, width: torch.linspace(0.0, 0.3, bins), True),
        "TranslateX": (lambda bins, height, width: torch.linspace(0.0, 10.0, bins), True),
        "TranslateY": (lambda bins, height, width: torch.linspace(0.0, 10.0, bins), True),
        "Rotate": (lambda bins, height, width: torch.linspace(0.0, 30.0, bins), True),
    }

    def __init__(self, *args, op_probability=0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.op_probability = op_probability

    def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
        """One drawn op, applied with probability `op_probability` (torchvision applies every drawn op)."""
        if torch.rand(()) >= self.op_probability:
            return image
        return super()._apply_image_or_video_transform(image, transform_id, magnitude, interpolation, fill)


def train_transform(mean, std, size=(384, 128), erasing_p=RANDOM_ERASING_P, randaugment=True):
    """Resize (bicubic), horizontal flip, RandAugment (2 ops, magnitude 7 of 10, the original's op list; optional),
    to tensor, normalise, random erasing (area 2-40%, fill 0), as the original training pipeline."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.RandomHorizontalFlip(),
        OriginalRandAugment(num_ops=2, magnitude=7, num_magnitude_bins=11, fill=128) if randaugment else v2.Identity(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
        v2.RandomErasing(p=erasing_p, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0),
    ])
