"""Checkpoints in the original APTM layout, made from our models by inverting the converter's key mapping."""

from modeling_aptm import APTMForPreTraining


def original_state_dict(config, bare_bert=False):
    """An original-layout state dict made from our tiny model (inverse of the key mapping)."""
    model = APTMForPreTraining(config)
    fusion = config.text_config.num_hidden_layers
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("vision_model."):
            key = "vision_encoder." + key[len("vision_model."):]
        elif key.startswith("text_model.embeddings."):
            key = "text_encoder.bert.embeddings." + key[len("text_model.embeddings."):]
        elif key.startswith("text_model.encoder.layer."):
            key = "text_encoder.bert.encoder.layer." + key[len("text_model.encoder.layer."):]
        elif key.startswith("fusion_model.layer."):
            index, rest = key[len("fusion_model.layer."):].split(".", 1)
            key = f"text_encoder.bert.encoder.layer.{int(index) + fusion}.{rest}"
        elif key == "mlm_head.decoder.weight":
            key = "text_encoder.cls.predictions.decoder.weight"
        elif key == "mlm_head.decoder.bias":
            state["text_encoder.cls.predictions.bias"] = value
            key = "text_encoder.cls.predictions.decoder.bias"
        elif key.startswith("mlm_head.transform."):
            key = "text_encoder.cls.predictions.transform." + key[len("mlm_head.transform."):]
        if bare_bert:
            key = key.replace("text_encoder.bert.", "text_encoder.")
        state[key] = value
    return model, state
