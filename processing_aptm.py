"""APTM processor: image preprocessing (any mode -> RGB, bicubic 384x128, dataset mean/std), BERT WordPiece
tokenisation without the trailing [SEP] (as the original APTM tokenizer), and attribute prompts."""

import numpy as np
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor

# Per-dataset normalisation statistics of the original APTM (mean, std), RGB.
DATASET_NORMALIZATION = {
    "mals": ((0.4416847, 0.41812873, 0.4237452), (0.3088255, 0.29743394, 0.301009)),
    "cuhk-pedes": ((0.38901278, 0.3651612, 0.34836376), (0.24344306, 0.23738699, 0.23368555)),
    "icfg-pedes": ((0.30941582, 0.28956893, 0.30347288), (0.25849792, 0.24547698, 0.2366199)),
    "rstpreid": ((0.27722597, 0.26065794, 0.3036557), (0.2609547, 0.2508087, 0.25293276)),
    "pa100k": ((0.46485138, 0.45038012, 0.4632019), (0.25088054, 0.24609283, 0.24240193)),
    # not a dataset's: the CLIP constants, which MRA (APTM's successor) normalises every dataset with
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}

# MALS colour attributes in label order (the procedural generator draws from them too).
MALS_UPPER_COLOURS = ("black", "white", "red", "purple", "yellow", "blue", "green", "gray")
MALS_LOWER_COLOURS = ("black", "white", "purple", "yellow", "blue", "green", "pink", "gray", "brown")

# MALS: 27 attributes in label order; prompt 2i describes label value 0, prompt 2i+1 label value 1 (the original
# wording, which parity with released checkpoints depends on).
MALS_ATTRIBUTES = (
    "gender", "age", "hair", "hat", "backpack", "handbag", "bag", "sleeve", "lower_length", "lower_type",
    *(f"upper_{c}" for c in MALS_UPPER_COLOURS), *(f"lower_{c}" for c in MALS_LOWER_COLOURS),
)
MALS_PROMPTS = (
    ("the person is a woman", "the person is a man"),
    ("the person is younger than 18 years old", "the person is older than 18 years old"),
    ("the person with short hair", "the person with long hair"),
    ("the person with a hat", "the person without a hat"),
    ("the person with a backpack", "the person without a backpack"),
    ("the person with a handbag", "the person without a handbag"),
    ("the person with a bag", "the person without a bag"),
    ("the person wears long sleeved upper clothes", "the person wears short sleeved upper clothes"),
    ("the person wears long dress or long pants", "the person wears short dress or short pants"),
    ("the person wears dress or skirt", "the person wears pants or shorts"),
    *((f"the person wears {c} upper clothes", f"the person does not wear {c} upper clothes") for c in MALS_UPPER_COLOURS),
    *((f"the person wears {c} lower clothes", f"the person does not wear {c} lower clothes") for c in MALS_LOWER_COLOURS),
)

# PA-100K: 26 attributes, 1 = present; prompt 2i is the negative statement, 2i+1 the positive one. The wording,
# typos included ("a glasses", "hold", LowerStripe phrased on the upper clothes), is the original's.
PA100K_ATTRIBUTES = (
    "Female", "AgeOver60", "Age18-60", "AgeLess18", "Front", "Side", "Back", "Hat", "Glasses", "HandBag",
    "ShoulderBag", "Backpack", "HoldObjectsInFront", "ShortSleeve", "LongSleeve", "UpperStride", "UpperLogo",
    "UpperPlaid", "UpperSplice", "LowerStripe", "LowerPattern", "LongCoat", "Trousers", "Shorts", "Skirt&Dress",
    "boots",
)
PA100K_PROMPTS = (
    ("the person is a man", "the person is a woman"),
    ("the person is no more than 60 years old", "the person is older than 60 years old"),
    ("the person is a young or old one", "the person is of mid age, between 18 and 60 years old"),
    ("the person is older than 18", "the person is a baby or a teenager, younger than 18"),
    *((f"the picture is not the {v} of the person", f"the picture shows the {v} of the person")
      for v in ("front", "side", "back")),
    *((f"a person without a {o}", f"a person with a {o}")
      for o in ("hat", "glasses", "handbag", "shoulder bag", "backpack")),
    ("the person does not hold an object in front", "the person hold an object in front"),
    *((f"the person does not wear {s} sleeved upper clothes", f"the person wears {s} sleeved upper clothes")
      for s in ("short", "long")),
    *((f"there is no {p} on the upper clothes of the person", f"there is {p} on the upper clothes of the person")
      for p in ("stride", "logo", "plaid", "splice", "stripe")),
    ("there is no pattern on the lower part of the person", "there is pattern on the lower part of the person"),
    *((f"the person does not wear {c}", f"the person wears {c}")
      for c in ("long coat", "trousers", "shorts", "a skirt or a dress", "boots")),
)

ATTRIBUTE_SCHEMAS = {"mals": (MALS_ATTRIBUTES, MALS_PROMPTS), "pa100k": (PA100K_ATTRIBUTES, PA100K_PROMPTS)}


def _as_uint8_array(array, index):
    """Scale a numpy image of any integer or float range to uint8."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16 or (np.issubdtype(array.dtype, np.integer) and array.max(initial=0) > 255):
        return np.clip(array / 257.0, 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_):
        return np.clip(array, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if np.nanmax(array, initial=0.0) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(array) * scale, 0, 255).round().astype(np.uint8)
    raise TypeError(f"image {index}: unsupported array dtype {array.dtype}")


def to_rgb(image, index=0):
    """Return `image` (a PIL image or an `HxW`/`HxWxC` numpy array, any mode) as an RGB PIL image. 16-bit and float
    images are rescaled to 8 bits; transparency is dropped (as `Image.convert("RGB")` does)."""
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image {index}: array of shape {image.shape} is not HxW or HxWxC with C in (1, 3, 4)")
        image = Image.fromarray(_as_uint8_array(image.squeeze(2) if image.ndim == 3 and image.shape[2] == 1 else image, index))
    if not isinstance(image, Image.Image):
        raise TypeError(f"image {index}: expected a PIL.Image.Image or numpy array, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"image {index}: zero-size image ({image.width}x{image.height})")
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_as_uint8_array(np.asarray(image), index)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ValueError(f"image {index}: cannot convert mode {image.mode} to RGB ({error})") from error


class APTMImageProcessor(BaseImageProcessor):
    r"""
    Converts images to RGB, resizes them to `size` with bicubic interpolation (PIL, as the original torchvision
    pipeline does on PIL images), scales to [0, 1] and normalises with the dataset's mean and std.

    Args:
        size (`dict`, *optional*, defaults to `{"height": 384, "width": 128}`): output size.
        image_mean (`list[float]`, *optional*): per-channel mean; defaults to the MALS statistics.
        image_std (`list[float]`, *optional*): per-channel std; defaults to the MALS statistics.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, size=None, image_mean=None, image_std=None, **kwargs):
        super().__init__(**kwargs)
        mean, std = DATASET_NORMALIZATION["mals"]
        self.size = dict(size or {"height": 384, "width": 128})
        self.image_mean = list(image_mean or mean)
        self.image_std = list(image_std or std)

    @classmethod
    def for_dataset(cls, name, **kwargs):
        """Image processor with the normalisation statistics of dataset `name` (see `DATASET_NORMALIZATION`)."""
        if name not in DATASET_NORMALIZATION:
            raise ValueError(f"unknown dataset {name!r} for normalisation; choose one of {sorted(DATASET_NORMALIZATION)}")
        mean, std = DATASET_NORMALIZATION[name]
        return cls(image_mean=mean, image_std=std, **kwargs)

    def preprocess(self, images, return_tensors="pt", **kwargs):
        if not isinstance(images, (list, tuple)):
            images = [images]
        if not images:
            raise TypeError("images must be an image or a non-empty list of images")
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        size = (self.size["width"], self.size["height"])
        arrays = []
        for index, image in enumerate(images):
            resized = to_rgb(image, index).resize(size, Image.BICUBIC)
            pixels = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
            arrays.append(((pixels - mean) / std).transpose(2, 0, 1))
        return BatchFeature({"pixel_values": np.stack(arrays)}, tensor_type=return_tensors)

    def __call__(self, images, return_tensors="pt", **kwargs):
        return self.preprocess(images, return_tensors=return_tensors, **kwargs)


class APTMProcessor(ProcessorMixin):
    r"""
    Image processor + BERT uncased tokenizer + attribute prompts.

    Text becomes `[CLS] word-pieces` (no trailing `[SEP]`, as the original APTM tokenizer) truncated to
    `max_length` tokens and padded to `max_length`; with `add_sep_token` (MRA, which uses `BertTokenizer`),
    `[CLS] word-pieces [SEP]`, at most `max_length - 2` pieces. Attribute prompts are data of the processor (saved in
    `processor_config.json`): `attribute_names[i]` owns prompts `attribute_prompts[i] = (label 0, label 1)`.

    Args:
        image_processor (`APTMImageProcessor`): image preprocessing.
        tokenizer (`BertTokenizer`): lower-case WordPiece tokenizer with the bert-base-uncased vocabulary.
        attribute_names (`list[str]`, *optional*): attribute names in label order; defaults to MALS.
        attribute_prompts (`list[list[str]]`, *optional*): one (label 0, label 1) prompt pair per attribute.
        max_length (`int`, *optional*, defaults to 56): caption tokens, [CLS] (and [SEP]) included.
        add_sep_token (`bool`, *optional*, defaults to `False`): end every text with [SEP] (MRA) instead of APTM's
            bare `[CLS] word-pieces`.
    """

    def __init__(self, image_processor=None, tokenizer=None, attribute_names=None, attribute_prompts=None,
                 max_length=56, add_sep_token=False, **kwargs):
        if (attribute_names is None) != (attribute_prompts is None):
            raise ValueError("pass attribute_names and attribute_prompts together")
        names, prompts = (attribute_names, attribute_prompts) if attribute_names is not None else ATTRIBUTE_SCHEMAS["mals"]
        if len(names) != len(prompts) or any(len(pair) != 2 for pair in prompts):
            raise ValueError("attribute_prompts must hold one (label 0, label 1) pair per attribute name")
        self.attribute_names = list(names)
        self.attribute_prompts = [list(pair) for pair in prompts]
        self.max_length = max_length
        if not isinstance(add_sep_token, bool):
            raise ValueError(f"add_sep_token must be true or false, got {add_sep_token!r}")
        self.add_sep_token = add_sep_token
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_schema(cls, image_processor, tokenizer, schema="mals", **kwargs):
        """Processor whose attribute prompts are a built-in schema: `"mals"` (27) or `"pa100k"` (26)."""
        if schema not in ATTRIBUTE_SCHEMAS:
            raise ValueError(f"unknown attribute schema {schema!r}; choose one of {sorted(ATTRIBUTE_SCHEMAS)}")
        names, prompts = ATTRIBUTE_SCHEMAS[schema]
        return cls(image_processor, tokenizer, attribute_names=names, attribute_prompts=prompts, **kwargs)

    @property
    def prompt_texts(self):
        """All prompts in model order: prompt `2i + v` states label value `v` of attribute `i`."""
        return [prompt for pair in self.attribute_prompts for prompt in pair]

    def tokenize(self, text, max_length=None, padding="max_length", truncation=True, return_tensors="pt"):
        """Tokenise `text` (a string or list of strings) as `[CLS] pieces [PAD]...` (`[CLS] pieces [SEP] [PAD]...`
        with `add_sep_token`)."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not texts:
            raise TypeError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
        for index, item in enumerate(texts):
            if not isinstance(item, str):
                raise TypeError(f"text {index}: expected a string, got {type(item).__name__}")
            if not item.strip():
                raise ValueError(f"text {index}: empty text")
        max_length = max_length or self.max_length
        pieces = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        special = 1 + self.add_sep_token
        for index, ids in enumerate(pieces):
            if not ids:
                raise ValueError(f"text {index}: no word pieces in {texts[index]!r}")
            if len(ids) > max_length - special and not truncation:
                raise ValueError(f"text {index}: {len(ids) + special} tokens exceed max_length {max_length}")
        end = [self.tokenizer.sep_token_id] if self.add_sep_token else []
        rows = [[self.tokenizer.cls_token_id] + ids[: max_length - special] + end for ids in pieces]
        width = max_length if padding == "max_length" else max(len(row) for row in rows)
        input_ids = np.full((len(rows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            attention_mask[index, : len(row)] = 1
        return BatchFeature({"input_ids": input_ids, "attention_mask": attention_mask}, tensor_type=return_tensors)

    def __call__(self, text=None, images=None, return_tensors="pt", **kwargs):
        """Tokenise `text` and/or preprocess `images` into `input_ids`, `attention_mask` and `pixel_values`."""
        if text is None and images is None:
            raise ValueError("pass text, images, or both")
        data = {}
        if text is not None:
            data.update(self.tokenize(text, return_tensors=return_tensors, **kwargs))
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors))
        return BatchFeature(data, tensor_type=return_tensors)

    def encode_attribute_prompts(self, return_tensors="pt"):
        """All attribute prompts tokenised, padded to the longest (as the original), with [SEP] only under
        `add_sep_token`."""
        return self.tokenize(self.prompt_texts, padding="longest", truncation=False, return_tensors=return_tensors)


APTMImageProcessor.register_for_auto_class("AutoImageProcessor")
APTMProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "APTMImageProcessor", "APTMProcessor", "ATTRIBUTE_SCHEMAS", "DATASET_NORMALIZATION", "MALS_ATTRIBUTES",
    "MALS_LOWER_COLOURS", "MALS_PROMPTS", "MALS_UPPER_COLOURS", "PA100K_ATTRIBUTES", "PA100K_PROMPTS", "to_rgb",
]
