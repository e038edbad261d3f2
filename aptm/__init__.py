"""APTM library around the Hub files that travel with every checkpoint (`configuration_aptm`, `modeling_aptm`,
`processing_aptm`, `retrieval_aptm`, `pipeline_aptm`), in folders by job: `data` (transforms, captions, masking,
collator), `training` (arguments, optimiser groups, trainer, the run), `retrieval` (the gallery index on disk and
evaluation around `retrieval_aptm`), `convert` (original checkpoints, public backbones), `footage` (detection, video
and archive sources, the footage index), and the modules `evaluation` (the protocol on dataset splits), `metrics`,
`figures`, `hub` (pipelines, model cards, publishing) and `factory` (tokenizer, processor, checkpoint loading).

Checkpoints load through the Auto classes with `trust_remote_code=True`: the model code travels with them."""

from configuration_aptm import APTMConfig, APTMTextConfig, APTMVisionConfig
from modeling_aptm import APTMForPreTraining, APTMModel
from processing_aptm import APTMImageProcessor, APTMProcessor

from .factory import build_processor, load_checkpoint, load_tokenizer, minilm_dir

__all__ = [
    "APTMConfig", "APTMTextConfig", "APTMVisionConfig", "APTMModel", "APTMForPreTraining", "APTMImageProcessor",
    "APTMProcessor", "build_processor", "load_checkpoint", "load_tokenizer", "minilm_dir",
]
