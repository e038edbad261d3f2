"""APTM configuration: a Swin vision tower, a BERT text tower and a BERT fusion tower with cross-attention."""

import copy

from transformers import PretrainedConfig


class APTMVisionConfig(PretrainedConfig):
    r"""
    Configuration of APTM's Swin Transformer image encoder (the original "Swin-B 384x128" geometry).

    Args:
        image_size (`tuple[int, int]`, *optional*, defaults to `(384, 128)`): input height and width.
        patch_size (`int`, *optional*, defaults to 4): side of the square patches of the patch embedding.
        num_channels (`int`, *optional*, defaults to 3): input channels.
        embed_dim (`int`, *optional*, defaults to 128): width of stage 0; every later stage doubles it.
        depths (`list[int]`, *optional*, defaults to `[2, 2, 18, 2]`): blocks per stage.
        num_heads (`list[int]`, *optional*, defaults to `[4, 8, 16, 32]`): attention heads per stage.
        window_size (`int`, *optional*, defaults to 8): attention window. A stage whose shorter grid side is not
            larger than the window uses that side as window and no shift (stage 2 and 3 at 384x128).
        stage_window_sizes (`list[int]`, *optional*): one attention window per stage, replacing `window_size` stage
            by stage (the same clipping rule applies). Default: `window_size` everywhere (APTM). MRA, APTM's
            successor, builds its last stage with window 4 (`[8, 8, 8, 4]`), so at its 384x256 input every stage is
            shifted, the last one (12x8) by 2.
        mlp_ratio (`float`, *optional*, defaults to 4.0): MLP hidden width over block width.
        qkv_bias (`bool`, *optional*, defaults to `True`): bias on the query/key/value projection.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0): dropout after MLPs and projections.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0): dropout on attention weights.
        drop_path_rate (`float`, *optional*, defaults to 0.1): stochastic depth, linear over all blocks.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5): LayerNorm epsilon.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the truncated-normal weight init.
    """

    model_type = "aptm_vision_model"
    base_config_key = "vision_config"

    def __init__(
        self,
        image_size=(384, 128),
        patch_size=4,
        num_channels=3,
        embed_dim=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=8,
        stage_window_sizes=None,
        mlp_ratio=4.0,
        qkv_bias=True,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.1,
        layer_norm_eps=1e-5,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = list(image_size)
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.embed_dim = embed_dim
        self.depths = list(depths)
        self.num_heads = list(num_heads)
        self.window_size = window_size
        self.stage_window_sizes = None if stage_window_sizes is None else list(stage_window_sizes)
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        if self.stage_window_sizes is not None and (
                len(self.stage_window_sizes) != len(self.depths)
                or not all(isinstance(w, int) and w > 0 for w in self.stage_window_sizes)):
            raise ValueError(f"stage_window_sizes {self.stage_window_sizes} must hold one positive integer per stage "
                             f"({len(self.depths)})")
        stride = patch_size * 2 ** (len(self.depths) - 1)
        if any(side % stride for side in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by the total stride {stride}")
        for index in range(len(self.depths)):
            grid = [side // (patch_size * 2**index) for side in self.image_size]
            window = min(self.stage_window_size(index), *grid)
            if any(side % window for side in grid):
                raise ValueError(f"stage {index}'s {grid[0]}x{grid[1]} grid is not divisible by its window {window} "
                                 f"(window_size {window_size}, stage_window_sizes {self.stage_window_sizes})")

    def stage_window_size(self, index):
        """The attention window stage `index` is built with (before clipping to its grid)."""
        return self.window_size if self.stage_window_sizes is None else self.stage_window_sizes[index]

    @property
    def hidden_size(self):
        """Width of the image tokens the encoder returns."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def num_patches(self):
        """Number of patch tokens after the last stage (the encoder prepends one global token)."""
        stride = self.patch_size * 2 ** (len(self.depths) - 1)
        return (self.image_size[0] // stride) * (self.image_size[1] // stride)


class APTMTextConfig(PretrainedConfig):
    r"""
    Configuration of APTM's BERT text encoder (`text_config`); [`APTMCrossConfig`] extends it for the fusion encoder.

    Args:
        vocab_size (`int`, *optional*, defaults to 30522): WordPiece vocabulary size (bert-base-uncased).
        hidden_size (`int`, *optional*, defaults to 768): width of the hidden states.
        num_hidden_layers (`int`, *optional*, defaults to 6): layers of this tower.
        num_attention_heads (`int`, *optional*, defaults to 12): attention heads.
        intermediate_size (`int`, *optional*, defaults to 3072): feed-forward width.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): feed-forward activation.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.1): dropout on hidden states.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.1): dropout on attention weights.
        max_position_embeddings (`int`, *optional*, defaults to 512): size of the position table.
        type_vocab_size (`int`, *optional*, defaults to 2): token-type vocabulary.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12): LayerNorm epsilon.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the normal weight init.
        encoder_hidden_size (`int`, *optional*): width of the image tokens the cross-attention reads; set for the
            fusion tower only (`APTMConfig` fills it in from the vision config).
    """

    model_type = "aptm_text_model"
    base_config_key = "text_config"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        pad_token_id=0,
        encoder_hidden_size=None,
        **kwargs,
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.encoder_hidden_size = encoder_hidden_size
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}")


class APTMCrossConfig(APTMTextConfig):
    r"""
    Configuration of APTM's fusion encoder (`cross_config`): BERT layers whose cross-attention reads the image tokens
    (width `encoder_hidden_size`, filled in by `APTMConfig` from the vision config). Same arguments as
    [`APTMTextConfig`]; its own class so that the composite config's `cross_config` saves and loads on its own.
    """

    model_type = "aptm_cross_model"
    base_config_key = "cross_config"

    def __init__(self, **kwargs):  # an explicit __init__: transformers builds one per config class otherwise
        super().__init__(**kwargs)


def _sub_config(value, config_class, name):
    if value is None:
        return config_class()
    if isinstance(value, dict):
        return config_class(**value)
    if type(value) is config_class:
        return value
    if isinstance(value, APTMTextConfig) and issubclass(config_class, APTMTextConfig):  # a text config as cross_config
        return config_class.from_dict(value.to_dict())
    raise TypeError(f"{name} must be a dict or {config_class.__name__}, got {type(value).__name__}")


class APTMConfig(PretrainedConfig):
    r"""
    Configuration of an APTM model.

    Args:
        vision_config (`dict` or `APTMVisionConfig`, *optional*): the Swin image encoder.
        text_config (`dict` or `APTMTextConfig`, *optional*): the BERT text encoder (6 layers in the paper).
        cross_config (`dict` or `APTMCrossConfig`, *optional*): the fusion encoder (6 BERT layers with
            cross-attention to the image tokens). Its `encoder_hidden_size` is set to the vision width.
        embed_dim (`int`, *optional*, defaults to 256): width of the projected, normalised features used for ITC.
        projection_head (`str`, *optional*, defaults to `"linear"`): how the ITC features are projected. `"linear"`
            (APTM): a Linear layer on the global image token and on the [CLS] text state. `"pooled_batchnorm"` (MRA,
            APTM's successor): `APTMPooledProjection`, the patch tokens averaged in 3 consecutive chunks (image) or
            [CLS] and the other positions averaged in 3 overlapping chunks (text, padding included), concatenated,
            then BatchNorm1d, Dropout(`projection_dropout`) and Linear.
        projection_dropout (`float`, *optional*, defaults to 0.0): dropout of the `"pooled_batchnorm"` head (MRA's
            `itc_dop`, 0.5 when fine-tuning; training only).
        temp (`float`, *optional*, defaults to 0.07): initial value of the learnable ITC temperature.
        k_test (`int`, *optional*, defaults to 128): gallery candidates re-ranked with the ITM head at evaluation
            (MRA: 512 for CUHK-PEDES and ICFG-PEDES, 1000 for RSTPReid).
        test_time_flip (`bool`, *optional*, defaults to `False`): MRA's test-time augmentation, which the retrieval
            engine applies by default: every gallery image is also encoded mirrored; the ITC features of the two are
            averaged and the ITM scores of both are normalised separately and averaged (see `retrieval_aptm`).
        itm_cosine_weight (`float`, *optional*, defaults to 0.002): weight of the normalised cosine added to the
            normalised ITM score in APTM's score fusion (single-process rule, see the retrieval engine).
        num_attributes (`int`, *optional*, defaults to 27): attributes of the prompt schema (MALS 27, PA-100K 26).
        itc_loss_weight, itm_loss_weight, mlm_loss_weight (`float`, *optional*, default to 1.0): weights of the
            text-matching losses.
        eda_loss_weight (`float`, *optional*, defaults to 0.8): weight of ITC/ITM on the EDA-augmented captions.
        attribute_loss_weight (`float`, *optional*, defaults to 0.8): weight `t` of the mean of the three attribute
            prompt losses (IAC, IAM, MAL).
        attribute_label_smoothing (`float`, *optional*, defaults to 0.0): label smoothing of the attribute losses
            (0.4 in MALS pre-training).
        attribute_balanced_loss (`bool`, *optional*, defaults to `False`): weigh the two label values of each attribute
            equally in IAC and IAM (per batch) instead of every image equally. Not in the original; it helps short
            runs whose attributes are rare (mA counts positives and negatives equally).
        num_attribute_matching_prompts (`int`, *optional*, defaults to 5): prompts drawn per step for IAM.
        itc_gradient (`str`, *optional*, defaults to `"local"`): how ITC's gradient crosses processes when training
            on several. ITC gathers the features of every process; with `"local"`, as the original, the gathered
            features of the other processes carry no gradient back, so each process's features get only its own
            loss's gradient and, after the gradient averaging of DDP, the ITC gradient of the encoders is 1 / world
            size of the one-process gradient on the global batch (the temperature's is not scaled). The paper's
            hyper-parameters were tuned this way, on 4 GPUs. With `"global"` the gradient flows back through the
            gather, which makes the update equal to the one-process update on the global batch at any process
            count. With one process both are the same.
        classifier_dropout (`float`, *optional*, defaults to 0.1): dropout of `APTMForImageClassification`, the
            image-only attribute classifier of the paper's PA-100K ablation (the original's `dop`).

    `k_test`, `itm_cosine_weight` and `test_time_flip` are evaluation settings that the checkpoint carries: the
    original configs set `k_test` per dataset (and a trained checkpoint re-ranks as many candidates as it was
    validated with), and the retrieval code that travels with the checkpoint needs them. Masking and augmentation settings belong to the data
    (see `aptm.data`), not to the model. Loss weights must be non-negative, the label smoothing in [0, 1),
    `num_attribute_matching_prompts` positive, `itc_gradient` `"local"` or `"global"`, `classifier_dropout` and
    `projection_dropout` in [0, 1), `projection_head` one of `PROJECTION_HEADS`; anything else raises a `ValueError`
    naming the field.
    """

    model_type = "aptm"
    sub_configs = {"vision_config": APTMVisionConfig, "text_config": APTMTextConfig, "cross_config": APTMCrossConfig}

    def __init__(
        self,
        vision_config=None,
        text_config=None,
        cross_config=None,
        embed_dim=256,
        projection_head="linear",
        projection_dropout=0.0,
        temp=0.07,
        k_test=128,
        test_time_flip=False,
        itm_cosine_weight=0.002,
        num_attributes=27,
        itc_loss_weight=1.0,
        itm_loss_weight=1.0,
        mlm_loss_weight=1.0,
        eda_loss_weight=0.8,
        attribute_loss_weight=0.8,
        attribute_label_smoothing=0.0,
        attribute_balanced_loss=False,
        num_attribute_matching_prompts=5,
        itc_gradient="local",
        classifier_dropout=0.1,
        **kwargs,
    ):
        self.vision_config = _sub_config(vision_config, APTMVisionConfig, "vision_config")
        self.text_config = _sub_config(text_config, APTMTextConfig, "text_config")
        self.cross_config = _sub_config(cross_config, APTMCrossConfig, "cross_config")
        self.cross_config.encoder_hidden_size = self.vision_config.hidden_size
        if self.cross_config.hidden_size != self.text_config.hidden_size:
            raise ValueError(
                f"cross_config.hidden_size ({self.cross_config.hidden_size}) must equal text_config.hidden_size "
                f"({self.text_config.hidden_size}): the fusion layers continue the text encoder"
            )
        self.embed_dim = embed_dim
        self.projection_head = projection_head
        self.projection_dropout = projection_dropout
        self.temp = temp
        self.k_test = k_test
        self.test_time_flip = test_time_flip
        self.itm_cosine_weight = itm_cosine_weight
        self.num_attributes = num_attributes
        self.itc_loss_weight = itc_loss_weight
        self.itm_loss_weight = itm_loss_weight
        self.mlm_loss_weight = mlm_loss_weight
        self.eda_loss_weight = eda_loss_weight
        self.attribute_loss_weight = attribute_loss_weight
        self.attribute_label_smoothing = attribute_label_smoothing
        self.attribute_balanced_loss = attribute_balanced_loss
        self.num_attribute_matching_prompts = num_attribute_matching_prompts
        self.itc_gradient = itc_gradient
        self.classifier_dropout = classifier_dropout
        self._check_training_fields()
        kwargs.setdefault("tie_word_embeddings", True)
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(**kwargs)

    def _check_training_fields(self):
        for name in LOSS_WEIGHTS:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
        if not 0 <= self.attribute_label_smoothing < 1:
            raise ValueError(f"attribute_label_smoothing must be in [0, 1), got {self.attribute_label_smoothing!r}")
        if not isinstance(self.num_attribute_matching_prompts, int) or self.num_attribute_matching_prompts < 1:
            raise ValueError(f"num_attribute_matching_prompts must be a positive integer, got "
                             f"{self.num_attribute_matching_prompts!r}")
        if not isinstance(self.attribute_balanced_loss, bool):
            raise ValueError(f"attribute_balanced_loss must be true or false, got {self.attribute_balanced_loss!r}")
        if self.itc_gradient not in ITC_GRADIENTS:
            raise ValueError(f"itc_gradient must be one of {ITC_GRADIENTS}, got {self.itc_gradient!r}")
        if self.projection_head not in PROJECTION_HEADS:
            raise ValueError(f"projection_head must be one of {PROJECTION_HEADS}, got {self.projection_head!r}")
        if not 0 <= self.projection_dropout < 1:
            raise ValueError(f"projection_dropout must be in [0, 1), got {self.projection_dropout!r}")
        if not isinstance(self.test_time_flip, bool):
            raise ValueError(f"test_time_flip must be true or false, got {self.test_time_flip!r}")
        if not 0 <= self.classifier_dropout < 1:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout!r}")

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build a named configuration: `"aptm-base"` (the paper's model) or `"aptm-tiny"` (same architecture,
        small widths and depths, a text tower shaped like MiniLM-L6 so its weights can initialise it)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)


ITC_GRADIENTS = ("local", "global")  # see APTMConfig's docstring
PROJECTION_HEADS = ("linear", "pooled_batchnorm")  # APTM's, MRA's
LOSS_WEIGHTS = ("itc_loss_weight", "itm_loss_weight", "mlm_loss_weight", "eda_loss_weight", "attribute_loss_weight")

# Every Auto class of a saved checkpoint, whichever APTM class saved it (the files travel with the checkpoint).
AUTO_MAP = {
    "AutoConfig": "configuration_aptm.APTMConfig",
    "AutoModel": "modeling_aptm.APTMModel",
    "AutoModelForPreTraining": "modeling_aptm.APTMForPreTraining",
    "AutoModelForImageClassification": "modeling_aptm.APTMForImageClassification",
}

PRESETS = {
    "aptm-base": {},
    "aptm-tiny": {
        "vision_config": {"embed_dim": 32, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 4, 8], "drop_path_rate": 0.0},
        "text_config": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
        "cross_config": {"hidden_size": 384, "num_hidden_layers": 2, "num_attention_heads": 12, "intermediate_size": 1536},
        "embed_dim": 128,
    },
}


APTMConfig.register_for_auto_class()

__all__ = ["APTMConfig", "APTMCrossConfig", "APTMTextConfig", "APTMVisionConfig", "PRESETS"]
