"""APTM library: retrieval engine, training, data pipeline and tools around the Hub model files
(`configuration_aptm`, `modeling_aptm`, `processing_aptm`). Importing it registers the APTM classes with the
transformers Auto classes, so saved checkpoints also load without `trust_remote_code`."""

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor

from configuration_aptm import APTMConfig, APTMTextConfig, APTMVisionConfig
from modeling_aptm import APTMForPreTraining, APTMModel
from processing_aptm import APTMImageProcessor, APTMProcessor

from .components import build_processor, load_tokenizer, minilm_dir

AutoConfig.register("aptm", APTMConfig, exist_ok=True)
AutoModel.register(APTMConfig, APTMModel, exist_ok=True)
AutoModelForPreTraining.register(APTMConfig, APTMForPreTraining, exist_ok=True)
AutoProcessor.register(APTMConfig, APTMProcessor, exist_ok=True)

__all__ = [
    "APTMConfig", "APTMTextConfig", "APTMVisionConfig", "APTMModel", "APTMForPreTraining", "APTMImageProcessor",
    "APTMProcessor", "build_processor", "load_tokenizer", "minilm_dir",
]
