"""Turn dataset rows into APTM training batches: augmented images, captions tokenised without [SEP], MLM masks,
EDA copies, person ids, attribute labels and the (masked) attribute prompt bank. The keys are the argument names of
`APTMForPreTraining.forward`."""

import hashlib
import random

import torch

from processing_aptm import to_rgb

from .captions import clean_caption, eda
from .image_transforms import RANDOM_ERASING_P, train_transform
from .masking import MASK_PROBABILITY, MAX_MASKS, MAX_SPAN, SPAN_PROBABILITY, WholeWordMasker


class APTMCollator:
    r"""
    Args:
        processor (`APTMProcessor`): tokenizer, image statistics and attribute prompts.
        captions (`bool`, *optional*, defaults to `True`): rows carry a `caption` (ITC/ITM/MLM); `False` for
            attribute-only data such as PA-100K.
        attributes (`bool`, *optional*, defaults to `False`): rows carry `attribute_labels`; adds the prompt bank.
        mlm (`bool`, *optional*, defaults to `True`): add MLM masks of the captions (and of the prompts with
            `attributes`).
        eda (`bool`, *optional*, defaults to `False`): add an EDA-augmented copy of each caption.
        dataset (`str`, *optional*): dataset name, for the per-dataset caption cleaning of the EDA copy.
        mask_padding (`bool`, *optional*, defaults to `False`): pad captions to `max_length` and let MLM mask the
            padding, as the original; otherwise captions are padded to the batch's longest (same results, faster).
        erasing_p (`float`, *optional*, defaults to `RANDOM_ERASING_P`, the original's 0.6): random-erasing probability.
        randaugment (`bool`, *optional*, defaults to `True`): apply RandAugment.
        mlm_probability, mlm_max_masks, mlm_span_probability, mlm_max_span (*optional*): the `WholeWordMasker`
            settings (the original's by default).
        seed (`int`, *optional*, defaults to 0): seed of the augmentation, masking and EDA draws.
        image_classifier (`bool`, *optional*, defaults to `False`): batches of the image-only attribute classifier,
            `pixel_values` and (with `attributes`) `attribute_labels` only: no person ids, no prompt bank.
    The draws of a batch are a function of `seed` and the batch's rows, not of the global random state, so a run is
    reproducible and a resumed run continues exactly the same trajectory (the Trainer restores its random state
    only after collating the first batch after a resume).
    """

    def __init__(self, processor, captions=True, attributes=False, mlm=True, eda=False, dataset=None, mask_padding=False,
                 erasing_p=RANDOM_ERASING_P, randaugment=True, mlm_probability=MASK_PROBABILITY, mlm_max_masks=MAX_MASKS,
                 mlm_span_probability=SPAN_PROBABILITY, mlm_max_span=MAX_SPAN, seed=0, image_classifier=False):
        self.processor = processor
        self.captions, self.attributes, self.mlm, self.eda, self.dataset = captions, attributes, mlm, eda, dataset
        self.image_classifier = image_classifier
        self.padding = "max_length" if mask_padding else "longest"
        image = processor.image_processor
        self.transform = train_transform(image.image_mean, image.image_std,
                                         (image.size["height"], image.size["width"]), erasing_p, randaugment)
        self.masker = WholeWordMasker(processor.tokenizer, mlm_probability, mlm_max_masks, mlm_span_probability,
                                      mlm_max_span, mask_padding=mask_padding)
        self.seed = seed
        if attributes:
            self.prompts = processor.encode_attribute_prompts()

    def _mask(self, input_ids, attention_mask, rng):
        masked = [self.masker(ids, mask, rng) for ids, mask in zip(input_ids.tolist(), attention_mask.tolist())]
        return {name: torch.tensor([m[i] for m in masked]) for i, name in enumerate(("input_ids", "positions", "labels"))}

    def batch_seed(self, rows):
        """A seed from the collator's seed and what identifies the rows (paths, captions, ids)."""
        keys = [tuple(row.get(key) for key in ("image_path", "caption", "person_id")) for row in rows]
        return int.from_bytes(hashlib.sha256(repr((self.seed, keys)).encode()).digest()[:8], "little")

    def __call__(self, rows):
        seed = self.batch_seed(rows)
        rng = random.Random(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pixels = [self.transform(to_rgb(row["image"], i)) for i, row in enumerate(rows)]
        batch = {"pixel_values": torch.stack(pixels)}
        if "person_id" in rows[0] and not self.image_classifier:
            batch["person_ids"] = torch.tensor([row["person_id"] for row in rows])
        if self.captions:
            captions = [clean_caption(row["caption"]) for row in rows]
            text = self.processor.tokenize(captions, padding=self.padding)
            batch.update(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
            if self.mlm:
                masked = self._mask(text["input_ids"], text["attention_mask"], rng)
                batch.update(mlm_input_ids=masked["input_ids"], mlm_positions=masked["positions"],
                             mlm_labels=masked["labels"])
            if self.eda:
                copies = [eda(clean_caption(c, self.dataset), rng) for c in captions]
                augmented = self.processor.tokenize(copies, padding=self.padding)
                batch.update(eda_input_ids=augmented["input_ids"], eda_attention_mask=augmented["attention_mask"])
        if self.attributes:
            batch["attribute_labels"] = torch.tensor([row["attribute_labels"] for row in rows], dtype=torch.long)
        if self.attributes and not self.image_classifier:
            batch.update(attribute_input_ids=self.prompts["input_ids"],
                         attribute_attention_mask=self.prompts["attention_mask"])
            if self.mlm:
                masked = self._mask(self.prompts["input_ids"], self.prompts["attention_mask"], rng)
                batch.update(attribute_mlm_input_ids=masked["input_ids"], attribute_mlm_positions=masked["positions"],
                             attribute_mlm_labels=masked["labels"])
        return batch
