"""APTM library around the Hub model files (`configuration_aptm`, `modeling_aptm`, `processing_aptm`), in folders by
job: `data` (transforms, captions, masking, collator), `training` (arguments, optimiser groups, trainer, the run),
`retrieval` (encoders, gallery index, fusion, search engine, attribute recognition), `convert` (original checkpoints,
public backbones), and the modules `evaluation` (the protocol on dataset splits), `metrics`, `figures`, `hub` (model
cards, pushing) and `factory` (tokenizer, processor, checkpoint loading).

Checkpoints load through the Auto classes with `trust_remote_code=True`: the model code travels with them."""

from configuration_aptm import APTMConfig, APTMTextConfig, APTMVisionConfig
from modeling_aptm import APTMForPreTraining, APTMModel
from processing_aptm import APTMImageProcessor, APTMProcessor

from .factory import build_processor, load_checkpoint, load_tokenizer, minilm_dir

__all__ = [
    "APTMConfig", "APTMTextConfig", "APTMVisionConfig", "APTMModel", "APTMForPreTraining", "APTMImageProcessor",
    "APTMProcessor", "build_processor", "load_checkpoint", "load_tokenizer", "minilm_dir",
]
