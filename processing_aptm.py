"""APTM processor: image preprocessing (any mode -> RGB, bicubic 384x128, dataset mean/std), BERT WordPiece
tokenisation without the trailing [SEP] (as the original APTM tokenizer), and attribute prompts."""

import copy
from typing import Optional, Union

import numpy as np
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import ImageInput
from transformers.processing_utils import ProcessingKwargs, Unpack
from transformers.tokenization_utils_base import TextInput

# Tokens per caption, [CLS] included: the original APTM's `max_tokens`. The tokenizer of an APTM processor holds it
# as `model_max_length` (set by `APTMProcessor.from_schema`), which is what tokenisation reads.
CAPTION_LENGTH = 56

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
        do_convert_rgb (`bool`, *optional*, defaults to `True`): convert every image to RGB first (any mode, 16-bit
            and float images included); without it the image keeps its channels (1, 3 or 4).
        do_resize (`bool`, *optional*, defaults to `True`): resize to `size`.
        size (`dict`, *optional*, defaults to `{"height": 384, "width": 128}`): output size.
        do_rescale (`bool`, *optional*, defaults to `True`): multiply the pixels by `rescale_factor`.
        rescale_factor (`float`, *optional*, defaults to `1/255`): scale of the 8-bit pixels.
        do_normalize (`bool`, *optional*, defaults to `True`): subtract `image_mean`, divide by `image_std`.
        image_mean (`list[float]`, *optional*): per-channel mean; defaults to the MALS statistics.
        image_std (`list[float]`, *optional*): per-channel std; defaults to the MALS statistics.

    Images may be PIL images, numpy arrays (`HxW`, `HxWxC`) or torch tensors (`CxHxW`, `HxWxC` or `HxW`). Every
    option can be overridden per call (`processor(images, do_normalize=False)`).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        do_convert_rgb: bool = True,
        do_resize: bool = True,
        size: Optional[dict[str, int]] = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Optional[list[float]] = None,
        image_std: Optional[list[float]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        mean, std = DATASET_NORMALIZATION["mals"]
        self.do_convert_rgb = do_convert_rgb
        self.do_resize = do_resize
        self.size = dict(size or {"height": 384, "width": 128})
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean or mean)
        self.image_std = list(image_std or std)

    @classmethod
    def for_dataset(cls, name: str, **kwargs) -> "APTMImageProcessor":
        """Image processor with the normalisation statistics of dataset `name` (see `DATASET_NORMALIZATION`)."""
        if name not in DATASET_NORMALIZATION:
            raise ValueError(f"unknown dataset {name!r} for normalisation; choose one of {sorted(DATASET_NORMALIZATION)}")
        mean, std = DATASET_NORMALIZATION[name]
        return cls(image_mean=mean, image_std=std, **kwargs)

    def _to_pil(self, image, index: int, do_convert_rgb: bool) -> Image.Image:
        if _is_torch_tensor(image):
            array = image.detach().cpu().numpy()
            if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
                array = array.transpose(1, 2, 0)  # CxHxW -> HxWxC
            image = array
        if do_convert_rgb:
            return to_rgb(image, index)
        if isinstance(image, np.ndarray):
            if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
                image = image.transpose(1, 2, 0)
            channels = 1 if image.ndim == 2 else image.shape[2]
            if image.ndim not in (2, 3) or channels not in (1, 3, 4):
                raise ValueError(f"image {index}: array of shape {image.shape} is not HxW or HxWxC with C in (1, 3, 4)")
            image = Image.fromarray(_as_uint8_array(image[..., 0] if channels == 1 and image.ndim == 3 else image,
                                                    index))
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {index}: expected a PIL.Image.Image, numpy array or torch tensor, "
                            f"got {type(image).__name__}")
        return image

    def preprocess(
        self,
        images,
        do_convert_rgb: Optional[bool] = None,
        do_resize: Optional[bool] = None,
        size: Optional[dict[str, int]] = None,
        do_rescale: Optional[bool] = None,
        rescale_factor: Optional[float] = None,
        do_normalize: Optional[bool] = None,
        image_mean: Optional[list[float]] = None,
        image_std: Optional[list[float]] = None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> BatchFeature:
        """`images` (one image or a list) -> `pixel_values` `(batch, channels, height, width)`; each option defaults
        to the processor's own (see the class)."""
        unknown = sorted(set(kwargs) - IGNORED_IMAGE_KWARGS)
        if unknown:
            raise TypeError(f"APTMImageProcessor.preprocess got unexpected keyword arguments {unknown}")
        pick = lambda value, default: default if value is None else value  # noqa: E731
        do_convert_rgb, do_resize = pick(do_convert_rgb, self.do_convert_rgb), pick(do_resize, self.do_resize)
        size, do_rescale = pick(size, self.size), pick(do_rescale, self.do_rescale)
        rescale_factor, do_normalize = pick(rescale_factor, self.rescale_factor), pick(do_normalize, self.do_normalize)
        mean = np.asarray(pick(image_mean, self.image_mean), dtype=np.float32)
        std = np.asarray(pick(image_std, self.image_std), dtype=np.float32)
        if isinstance(images, np.ndarray) and images.ndim == 4 or _is_torch_tensor(images) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, (list, tuple)):
            images = [images]
        images = [image for item in images for image in (item if isinstance(item, (list, tuple)) else [item])]
        if not images:
            raise TypeError("images must be an image or a non-empty list of images")
        arrays = []
        for index, image in enumerate(images):
            image = self._to_pil(image, index, do_convert_rgb)
            if do_resize:
                image = image.resize((size["width"], size["height"]), Image.BICUBIC)
            pixels = np.asarray(image, dtype=np.float32)
            pixels = pixels[..., None] if pixels.ndim == 2 else pixels
            if do_rescale:  # divided by the float32 reciprocal: x / 255 exactly, as the original's pixels
                pixels = pixels / np.float32(1 / rescale_factor) if rescale_factor else pixels * 0
            if do_normalize:
                if not len(mean) == len(std) == pixels.shape[-1]:
                    raise ValueError(f"image {index}: {pixels.shape[-1]} channels but image_mean/image_std have "
                                     f"{len(mean)}/{len(std)} values (convert to RGB or give one per channel)")
                pixels = (pixels - mean) / std
            arrays.append(pixels.transpose(2, 0, 1))
        return BatchFeature({"pixel_values": np.stack(arrays)}, tensor_type=return_tensors)

    def __call__(self, images, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)


# Image keywords that a processor call may pass on (transformers' common `ImagesKwargs`) and that mean nothing to
# APTM's fixed pipeline: no cropping or padding, channels-first output.
IGNORED_IMAGE_KWARGS = {"data_format", "input_data_format", "device", "default_to_square", "resample",
                        "do_center_crop", "crop_size", "do_pad", "pad_size", "disable_grouping"}


def _is_torch_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


class APTMProcessorKwargs(ProcessingKwargs, total=False):
    """The processor's call defaults: captions padded and truncated to the caption length, PyTorch tensors."""

    _defaults = {"text_kwargs": {"padding": "max_length", "truncation": True, "return_tensors": "pt"},
                 "images_kwargs": {"return_tensors": "pt"}}


class APTMProcessor(ProcessorMixin):
    r"""
    Image processor + BERT uncased tokenizer + attribute prompts.

    Text becomes `[CLS] word-pieces` (no trailing `[SEP]`, as the original APTM tokenizer) truncated and padded to
    the caption length, which the tokenizer owns as `model_max_length` (56 for APTM: `CAPTION_LENGTH`, set by
    `from_schema`; saved with the tokenizer); with `add_sep_token` (MRA, which uses `BertTokenizer`),
    `[CLS] word-pieces [SEP]`, at most `max_length - 2` pieces. Attribute prompts are data of the processor (saved in
    `processor_config.json`): `attribute_names[i]` owns prompts `attribute_prompts[i] = (label 0, label 1)`.

    Calls follow `ProcessorMixin`: `processor(images, text, **kwargs)`, where `kwargs` are the tokenizer's (`padding`,
    `truncation`, `max_length`, `return_tensors`) and the image processor's options, flat or as `text_kwargs` /
    `images_kwargs`. Tensors are PyTorch unless `return_tensors` says otherwise.

    Args:
        image_processor (`APTMImageProcessor`): image preprocessing.
        tokenizer (`BertTokenizer`): lower-case WordPiece tokenizer with the bert-base-uncased vocabulary.
        attribute_names (`list[str]`, *optional*): attribute names in label order; defaults to MALS.
        attribute_prompts (`list[list[str]]`, *optional*): one (label 0, label 1) prompt pair per attribute.
        add_sep_token (`bool`, *optional*, defaults to `False`): end every text with [SEP] (MRA) instead of APTM's
            bare `[CLS] word-pieces`.
    """

    valid_processor_kwargs = APTMProcessorKwargs

    def __init__(self, image_processor=None, tokenizer=None, attribute_names: Optional[list[str]] = None,
                 attribute_prompts: Optional[list[list[str]]] = None, add_sep_token: bool = False, **kwargs):
        if (attribute_names is None) != (attribute_prompts is None):
            raise ValueError("pass attribute_names and attribute_prompts together")
        names, prompts = (attribute_names, attribute_prompts) if attribute_names is not None else ATTRIBUTE_SCHEMAS["mals"]
        if len(names) != len(prompts) or any(len(pair) != 2 for pair in prompts):
            raise ValueError("attribute_prompts must hold one (label 0, label 1) pair per attribute name")
        self.attribute_names = list(names)
        self.attribute_prompts = [list(pair) for pair in prompts]
        if not isinstance(add_sep_token, bool):
            raise ValueError(f"add_sep_token must be true or false, got {add_sep_token!r}")
        self.add_sep_token = add_sep_token
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_schema(cls, image_processor: APTMImageProcessor, tokenizer, schema: str = "mals",
                    max_length: Optional[int] = CAPTION_LENGTH, **kwargs) -> "APTMProcessor":
        """Processor whose attribute prompts are a built-in schema: `"mals"` (27) or `"pa100k"` (26); its captions
        are `max_length` tokens (set as the tokenizer's `model_max_length`; None keeps the tokenizer's)."""
        if schema not in ATTRIBUTE_SCHEMAS:
            raise ValueError(f"unknown attribute schema {schema!r}; choose one of {sorted(ATTRIBUTE_SCHEMAS)}")
        if max_length is not None:
            tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer keeps its own settings
            tokenizer.model_max_length = max_length
            # a `max_length` default of the tokenizer's (MiniLM's sentence-transformers config says 128) would take
            # precedence over the caption length in every call (`ProcessorMixin._merge_kwargs`)
            tokenizer.init_kwargs.pop("max_length", None)
        names, prompts = ATTRIBUTE_SCHEMAS[schema]
        return cls(image_processor, tokenizer, attribute_names=names, attribute_prompts=prompts, **kwargs)

    @property
    def max_length(self) -> int:
        """Tokens per caption, [CLS] included: the tokenizer's `model_max_length`."""
        return self.tokenizer.model_max_length

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]

    @property
    def prompt_texts(self) -> list[str]:
        """All prompts in model order: prompt `2i + v` states label value `v` of attribute `i`."""
        return [prompt for pair in self.attribute_prompts for prompt in pair]

    def tokenize(self, text: Union[str, list[str]], max_length: Optional[int] = None,
                 padding: Union[bool, str] = "max_length", truncation: Union[bool, str] = True,
                 return_tensors: Optional[str] = "pt") -> BatchFeature:
        """Tokenise `text` (a string or list of strings) as `[CLS] pieces [PAD]...` (`[CLS] pieces [SEP] [PAD]...`
        with `add_sep_token`), padded to `max_length` (default: the caption length) with `padding="max_length"`, else
        to the longest text."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not texts:
            raise TypeError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
        for index, item in enumerate(texts):
            if not isinstance(item, str):
                raise TypeError(f"text {index}: expected a string, got {type(item).__name__}")
            if not item.strip():
                raise ValueError(f"text {index}: empty text")
        max_length = max_length or self.max_length
        truncation = truncation not in (False, "do_not_truncate")
        pieces = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        special = 1 + self.add_sep_token
        for index, ids in enumerate(pieces):
            if not ids:
                raise ValueError(f"text {index}: no word pieces in {texts[index]!r}")
            if len(ids) > max_length - special and not truncation:
                raise ValueError(f"text {index}: {len(ids) + special} tokens exceed max_length {max_length}")
        end = [self.tokenizer.sep_token_id] if self.add_sep_token else []
        rows = [[self.tokenizer.cls_token_id] + ids[: max_length - special] + end for ids in pieces]
        width = max_length if str(getattr(padding, "value", padding)) == "max_length" else max(map(len, rows))
        input_ids = np.full((len(rows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            attention_mask[index, : len(row)] = 1
        return BatchFeature({"input_ids": input_ids, "attention_mask": attention_mask}, tensor_type=return_tensors)

    def __call__(
        self,
        images: Optional[ImageInput] = None,
        text: Optional[Union[TextInput, list[TextInput]]] = None,
        **kwargs: Unpack[APTMProcessorKwargs],
    ) -> BatchFeature:
        """Preprocess `images` and/or tokenise `text` into `pixel_values`, `input_ids` and `attention_mask`."""
        if text is None and images is None:
            raise ValueError("pass text, images, or both")
        # the kwargs class passed explicitly: transformers 5.0 (the lowest supported) requires it
        merged = self._merge_kwargs(APTMProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        text_kwargs, images_kwargs = merged["text_kwargs"], merged["images_kwargs"]
        return_tensors = text_kwargs.get("return_tensors", images_kwargs.get("return_tensors"))
        data = {}
        if text is not None:
            data.update(self.tokenize(text, text_kwargs.get("max_length"), text_kwargs.get("padding", "max_length"),
                                      text_kwargs.get("truncation", True), return_tensors=None))
        if images is not None:
            data.update(self.image_processor(images, **{**images_kwargs, "return_tensors": None}))
        return BatchFeature(data, tensor_type=return_tensors)

    def encode_attribute_prompts(self, return_tensors: Optional[str] = "pt") -> BatchFeature:
        """All attribute prompts tokenised, padded to the longest (as the original), with [SEP] only under
        `add_sep_token`."""
        return self.tokenize(self.prompt_texts, padding="longest", truncation=False, return_tensors=return_tensors)


APTMImageProcessor.register_for_auto_class("AutoImageProcessor")
APTMProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "APTMImageProcessor", "APTMProcessor", "APTMProcessorKwargs", "ATTRIBUTE_SCHEMAS", "CAPTION_LENGTH",
    "DATASET_NORMALIZATION", "MALS_ATTRIBUTES", "MALS_LOWER_COLOURS", "MALS_PROMPTS", "MALS_UPPER_COLOURS", "PA100K_ATTRIBUTES", "PA100K_PROMPTS", "to_rgb",
]
