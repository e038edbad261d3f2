"""The original APTM optimiser: four AdamW parameter groups (decay or not, base rate or `lr_mult` x it) and the
learning-rate schedules (linear warm-up, then linear or step decay)."""

from collections import defaultdict

NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.", "norm2.")


def fast_parameter(name, config, lr_2=False, init_cross=False):
    """Whether a parameter belongs to the original's learning-rate x `lr_mult` group: with `lr_2`, the last two Swin
    stages, the last two text and fusion layers (BERT layers 4, 5, 10, 11 of the paper model), the MLM head, the
    projections and the ITM head; with `init_cross`, the newly initialised cross-attention."""
    if init_cross and ".crossattention." in name:
        return True
    if not lr_2:
        return False
    stages = len(config.vision_config.depths)
    text, fusion = config.text_config.num_hidden_layers, config.cross_config.num_hidden_layers
    patterns = [f"vision_model.layers.{i}." for i in range(stages - 2, stages)]
    patterns += [f"text_model.encoder.layer.{i}." for i in range(text - 2, text)]
    patterns += [f"fusion_model.layer.{i}." for i in range(fusion - 2, fusion)]
    patterns += ["mlm_head.", "vision_proj.", "text_proj.", "itm_head."]
    return any(name.startswith(p) for p in patterns)


def parameter_groups(model, lr, weight_decay=0.01, lr_mult=2.0, lr_2=False, init_cross=False, text_lr=None):
    """The original four AdamW groups: (decay, no decay) x (base lr, lr x lr_mult). No-decay is a substring match on
    biases and norms, so `temp`, the relative-position tables and the ITM head's LayerNorm (`itm_head.1`) decay.
    `text_lr` (not in the original) gives the pretrained text encoder its own base rate, for recipes whose image
    encoder starts from scratch and needs a higher rate than a pretrained BERT tolerates."""
    groups = defaultdict(list)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = not any(pattern in name for pattern in NO_DECAY)
        base = text_lr if text_lr is not None and name.startswith("text_model.") else lr
        groups[(decay, fast_parameter(name, model.config, lr_2, init_cross), base)].append(parameter)
    return [{"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": base * lr_mult if fast else base}
            for (decay, fast, base), params in sorted(groups.items(), key=lambda item: (item[0][2] != lr, item[0]))]


def schedule_factor(kind, step, total, warmup):
    """Learning-rate factor at `step`: linear warm-up, then `linear` decay to 0 or the original's `step` decay
    (x1 until 4 warm-ups, x0.5 until 7, x0.2 after, on top of the linear decay). `warmup` < 1 is a fraction of
    `total`."""
    warmup = int(warmup * total) if warmup < 1 else int(warmup)
    if step < warmup:
        return step / max(1, warmup)
    decay = max(0.0, (total - step) / max(1, total - warmup))
    if kind == "linear":
        return decay
    if kind == "step":
        return decay * (1.0 if step < 4 * warmup else 0.5 if step < 7 * warmup else 0.2)
    raise ValueError(f"schedule must be 'linear' or 'step', got {kind!r}")
