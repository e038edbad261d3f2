"""Training data: image transforms, caption cleaning and EDA, whole-word MLM masking, and the collator that turns
dataset rows into `APTMForPreTraining` batches."""

from .captions import clean_caption, eda
from .collator import APTMCollator
from .image_transforms import RANDOM_ERASING_P, OriginalRandAugment, train_transform
from .masking import WholeWordMasker

__all__ = ["APTMCollator", "OriginalRandAugment", "RANDOM_ERASING_P", "WholeWordMasker", "clean_caption", "eda",
           "train_transform"]
