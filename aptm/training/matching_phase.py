"""A final training phase of the matching head alone (not in the original): once the joint training has aligned the
image and text encoders, they are frozen, their outputs on the training set are computed once, and only the fusion
encoder and ITM head learn, from the paper's matching losses (ITM with similarity-drawn hard negatives; IAM on the
attribute prompts when the data has labels). A step then costs the fusion encoder's work only, so a short run trains
the re-ranking head much further than the same time spent in joint steps (see the README's training section).

The cache holds every training image's tokens, every caption's text states and the prompt bank's; images are encoded
without augmentation. `matching_cache_gb` bounds it (the paper model on CUHK-PEDES needs 17 GB, the tiny one 7).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_aptm import prompt_targets
from retrieval_aptm import Encoder

from ..data.captions import clean_caption
from ..figures import plot_training_curves
from .optimization import parameter_groups, schedule_factor

logger = logging.getLogger(__name__)

TRAINED_PREFIXES = ("fusion_model.", "itm_head.")  # what the phase trains
WARMUP = 0.1  # fraction of the phase's steps


@dataclass
class EncodedTrainingSet:
    """The frozen encoders' outputs on a training set: per image its tokens `[I, 1 + N, C]`, features `[I, E]` and
    attribute labels `[I, A]` (or None); per caption its text states `[T, L, H]`, mask `[T, L]`, features `[T, E]`,
    image index and person id `[T]`; the prompt bank's states and mask (or None)."""

    image_embeds: torch.Tensor
    image_features: torch.Tensor
    attribute_labels: torch.Tensor | None
    text_embeds: torch.Tensor
    text_mask: torch.Tensor
    text_features: torch.Tensor
    text_image: torch.Tensor
    person_ids: torch.Tensor
    prompt_embeds: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None


def cache_size(model, num_images, num_captions, text_length):
    """Bytes of the `EncodedTrainingSet` states, features and masks for these counts."""
    config = model.config
    image = (1 + config.vision_config.num_patches) * config.vision_config.hidden_size
    text = text_length * (config.text_config.hidden_size + 2)  # float32 states, int64 mask
    return 4 * (num_images * (image + config.embed_dim) + num_captions * (text + config.embed_dim))


def encode_training_set(model, processor, dataset, attributes=False, batch_size=64, limit_gb=None):
    """`EncodedTrainingSet` of a training `datasets.Dataset` (`image`, `caption`, `person_id`, `image_path` and, with
    `attributes`, `attribute_labels` columns). Images shared by several captions are encoded once. Raises before
    encoding when the cache would exceed `limit_gb`."""
    columns = dataset.select_columns([c for c in ("image_path", "person_id", "caption") if c in dataset.column_names])
    paths = columns["image_path"] if "image_path" in columns.column_names else range(len(dataset))
    image_of_path, image_rows, text_image = {}, [], []  # image index of a path, dataset row of an image, of a caption
    for row, path in enumerate(paths):
        if path not in image_of_path:
            image_of_path[path] = len(image_rows)
            image_rows.append(row)
        text_image.append(image_of_path[path])
    captions = []
    for row, caption in enumerate(columns["caption"]):
        try:
            captions.append(clean_caption(caption))
        except ValueError as error:
            raise ValueError(f"training row {row} ({paths[row]}): {error}") from error
    tokens = processor.tokenize(captions, padding="longest")
    estimate = cache_size(model, len(image_rows), len(captions), tokens["input_ids"].shape[1])
    if limit_gb is not None and estimate > limit_gb * 2**30:
        raise ValueError(f"the matching phase caches the frozen encoders' outputs: {len(image_rows)} images and "
                         f"{len(captions)} captions take {estimate / 2**30:.1f} GB, over matching_cache_gb={limit_gb}")
    image_dataset = dataset.select(image_rows)
    images = Encoder(model, processor, batch_size=batch_size).encode_gallery(image_dataset)
    text_embeds, text_features = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(captions), batch_size), desc="encoding captions", leave=False):
            ids = tokens["input_ids"][start : start + batch_size].to(model.device)
            mask = tokens["attention_mask"][start : start + batch_size].to(model.device)
            embeds = model.text_model(ids, mask).last_hidden_state
            text_embeds.append(embeds.cpu())
            text_features.append(model.text_features_from_embeds(embeds).cpu())
        prompt_embeds = prompt_mask = labels = None
        if attributes:
            prompts = processor.encode_attribute_prompts()
            prompt_mask = prompts["attention_mask"]
            prompt_embeds = model.text_model(prompts["input_ids"].to(model.device),
                                             prompt_mask.to(model.device)).last_hidden_state.cpu()
            labels = torch.tensor(image_dataset["attribute_labels"], dtype=torch.long)
    return EncodedTrainingSet(
        image_embeds=images.image_embeds, image_features=images.image_features, attribute_labels=labels,
        text_embeds=torch.cat(text_embeds), text_mask=tokens["attention_mask"], text_features=torch.cat(text_features),
        text_image=torch.tensor(text_image), person_ids=torch.tensor(columns["person_id"]),
        prompt_embeds=prompt_embeds, prompt_mask=prompt_mask)


def train_matching_head(model, encoded, steps, learning_rate, batch_size, weight_decay=0.01, betas=(0.9, 0.98),
                        warmup=WARMUP, max_grad_norm=1.0, seed=0, log_every=10, on_log=None):
    """Train the fusion encoder and ITM head of `model` for `steps` AdamW steps on an `EncodedTrainingSet`: batches of
    `batch_size` captions with their images (drawn without replacement, epoch by epoch), ITM with the model's hard
    negatives and, when `encoded` has attribute labels, IAM on `config.num_attribute_matching_prompts` random prompts
    against the batch's images, weighed as in joint training (`total_loss`). Linear warm-up over `warmup` of the
    steps, then linear decay; gradients clipped to `max_grad_norm` (0: not clipped). Every other parameter stays as
    it is. Returns the log, one entry per `log_every` steps: `step`, `learning_rate` and the mean loss terms
    (`loss_matching_itm`, `loss_matching_iam`); `on_log` is called with each entry as it is made."""
    if steps < 1 or batch_size < 2:
        raise ValueError(f"the matching phase needs steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    trained = [p for name, p in model.named_parameters() if name.startswith(TRAINED_PREFIXES)]
    frozen = [p for name, p in model.named_parameters() if not name.startswith(TRAINED_PREFIXES) and p.requires_grad]
    device, count = model.device, len(encoded.text_image)
    batch_size = min(batch_size, count)
    log, sums = [], {}
    for parameter in frozen:
        parameter.requires_grad_(False)
    model.train()
    try:
        # the joint training's decay / no-decay split, over the trainable parameters left: the matching head's
        optimizer = torch.optim.AdamW(parameter_groups(model, learning_rate, weight_decay), betas=betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: schedule_factor("linear", step, steps, warmup))
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            order = torch.randperm(count)
            bar = tqdm(range(steps), desc="matching phase")
            for step in bar:
                if len(order) < batch_size:
                    order = torch.randperm(count)
                captions, order = order[:batch_size], order[batch_size:]
                terms = matching_terms(model, encoded, captions, device)
                loss = model.total_loss(terms, captions=True)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(trained, max_grad_norm)
                optimizer.step()
                scheduler.step()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.item()
                if (step + 1) % log_every == 0 or step + 1 == steps:
                    entries = (step % log_every) + 1
                    log.append({"step": step + 1, "learning_rate": scheduler.get_last_lr()[0],
                                **{name.replace("loss_", "loss_matching_"): round(total / entries, 4)
                                   for name, total in sums.items()}})
                    sums = {}
                    bar.set_postfix({name: value for name, value in log[-1].items() if name.startswith("loss_")})
                    if on_log is not None:
                        on_log(log[-1])
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.eval()
    return log


def matching_terms(model, encoded, captions, device):
    """The ITM (and IAM) loss terms of the captions at indices `captions` of `encoded` and their images."""
    images = encoded.text_image[captions]
    length = int(encoded.text_mask[captions].sum(dim=1).max())
    text_mask = encoded.text_mask[captions, :length].to(device)
    terms = {}
    terms["loss_itm"], _ = model.matching_loss(
        encoded.image_embeds[images].to(device), encoded.image_features[images].to(device),
        encoded.text_embeds[captions, :length].to(device), text_mask, encoded.text_features[captions].to(device),
        encoded.person_ids[captions].to(device))
    if encoded.attribute_labels is not None:
        distinct = images.unique()
        prompts = len(encoded.prompt_embeds)
        chosen = torch.randperm(prompts)[: min(model.config.num_attribute_matching_prompts, prompts)]
        terms["loss_iam"] = model.attribute_matching_loss(
            encoded.image_embeds[distinct].to(device), encoded.prompt_embeds.to(device), encoded.prompt_mask.to(device),
            prompt_targets(encoded.attribute_labels[distinct]).to(device), chosen)
    return terms


def run_matching_phase(trainer, train_dataset, attributes, metrics):
    """The phase as `run_training` runs it after the joint training (`trainer.args.matching_steps` steps): encode the
    training set with the trainer's model, train its matching head, evaluate, and keep the head that scores better
    on the validation `metric_for_best_model` (the phase's or the joint training's). Its losses join the trainer's
    log history (steps after the joint ones) and training curves. Every process runs the same phase alike. Returns
    the validation metrics of the kept model."""
    args, model = trainer.args, trainer.accelerator.unwrap_model(trainer.model)
    encoded = encode_training_set(model, trainer.processing_class, train_dataset, attributes,
                                  args.per_device_eval_batch_size, args.matching_cache_gb)
    before = {name: value.detach().clone() for name, value in model.state_dict().items()
              if name.startswith(TRAINED_PREFIXES)}
    start = trainer.state.global_step
    interval = args.logging_steps  # as the Trainer reads it: a fraction of the phase's steps when < 1
    log_every = max(1, int(interval * args.matching_steps if interval < 1 else interval))

    def log_after_the_joint_steps(entry):
        trainer.state.global_step = start + entry["step"]
        trainer.log({name: value for name, value in entry.items() if name != "step"})

    train_matching_head(model, encoded, args.matching_steps, args.matching_learning_rate,
                        args.per_device_train_batch_size, args.weight_decay, (args.adam_beta1, args.adam_beta2),
                        max_grad_norm=args.max_grad_norm, seed=args.seed, log_every=log_every,
                        on_log=log_after_the_joint_steps)
    after = trainer.evaluate()
    if trainer.is_world_process_zero():
        plot_training_curves(trainer.state.log_history, Path(args.output_dir) / "training_curves.png")
    key = f"eval_{args.metric_for_best_model}"
    if key in metrics and key in after:
        better = after[key] > metrics[key] if args.greater_is_better else after[key] < metrics[key]
        if not better:
            logger.warning("the matching phase did not improve validation %s (%.2f -> %.2f): the joint training's "
                           "matching head is kept", args.metric_for_best_model, metrics[key], after[key])
            model.load_state_dict(before, strict=False)
            return metrics
    return after
