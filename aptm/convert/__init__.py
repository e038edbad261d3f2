"""Getting weights into APTM: the original release's checkpoints (parity-tested converter) and public backbones
(a Swin checkpoint and a BERT folder) for pre-training, with the original's relative-position table resize."""

from .backbones import from_vision_text_pretrained, init_from_pretrained_backbones
from .original_checkpoint import ConversionError, ConversionReport, convert_checkpoint, load_original_checkpoint

__all__ = ["ConversionError", "ConversionReport", "convert_checkpoint", "from_vision_text_pretrained",
           "init_from_pretrained_backbones", "load_original_checkpoint"]
