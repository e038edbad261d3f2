"""A final training phase of the matching head alone (not in the original): once the joint training has aligned the
image and text encoders, they are frozen, their outputs on the training set are computed once, and only the fusion
encoder and ITM head learn, from the paper's matching losses (ITM with similarity-drawn hard negatives; IAM on the
attribute prompts when the data has labels). A step then costs the fusion encoder's work only, so a short run trains
the re-ranking head much further than the same time spent in joint steps (see docs/training.md, the matching phase).

The cache holds every training image's tokens, every caption's text states and the prompt bank's; images are encoded
without augmentation. `matching_cache_gb` bounds it (the paper model on CUHK-PEDES needs 17 GB, the tiny one 7).

The phase is a second `APTMTrainer` over the cache (its batches: `CachedBatches`), so logging, curves, checkpoints,
resuming and several processes are the Trainer's: under `torchrun` each process takes its share of the global batch
and DDP averages the matching head's gradients. The encoders are frozen by `requires_grad`, and while the phase trains,
calling the model (directly or through DDP) runs `matching_forward` on a cached batch (`matching_objective`).
"""

import dataclasses
import logging
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_aptm import APTMForPreTrainingOutput, prompt_targets
from retrieval_aptm import Encoder

from ..data.captions import clean_caption
from .arguments import APTMTrainingArguments
from .trainer import APTMTrainer, last_complete_checkpoint

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


class CachedBatches:
    """The phase's collator: a list of caption indices of an `EncodedTrainingSet` -> the batch `matching_forward`
    takes (the captions' states trimmed to their longest, their images' tokens and features, person ids and, with
    attribute labels, the batch's distinct images, their prompt targets and the prompt bank)."""

    def __init__(self, encoded: EncodedTrainingSet):
        self.encoded = encoded

    def __call__(self, captions: list[int]) -> dict:
        encoded, captions = self.encoded, torch.as_tensor(captions)
        images = encoded.text_image[captions]
        length = int(encoded.text_mask[captions].sum(dim=1).max())
        batch = {"image_embeds": encoded.image_embeds[images], "image_features": encoded.image_features[images],
                 "text_embeds": encoded.text_embeds[captions, :length],
                 "text_mask": encoded.text_mask[captions, :length], "text_features": encoded.text_features[captions],
                 "person_ids": encoded.person_ids[captions]}
        if encoded.attribute_labels is not None:
            distinct = images.unique()
            batch.update(attribute_images=encoded.image_embeds[distinct],
                         attribute_targets=prompt_targets(encoded.attribute_labels[distinct]),
                         prompt_embeds=encoded.prompt_embeds, prompt_mask=encoded.prompt_mask)
        return batch


def matching_forward(model, image_embeds, image_features, text_embeds, text_mask, text_features, person_ids,
                     attribute_images=None, attribute_targets=None, prompt_embeds=None, prompt_mask=None):
    """The phase's loss terms on a `CachedBatches` batch: ITM with the model's hard negatives and, with attribute
    targets, IAM on `config.num_attribute_matching_prompts` random prompts against the batch's distinct images,
    weighed as in joint training (`total_loss`)."""
    terms = {}
    terms["loss_itm"], _ = model.matching_loss(image_embeds, image_features, text_embeds, text_mask, text_features,
                                               person_ids)
    if attribute_targets is not None:
        chosen = torch.randperm(len(prompt_embeds))[: model.config.num_attribute_matching_prompts]
        terms["loss_iam"] = model.attribute_matching_loss(attribute_images, prompt_embeds, prompt_mask,
                                                          attribute_targets, chosen)
    return APTMForPreTrainingOutput(loss=model.total_loss(terms, captions=True), **terms)


@contextmanager
def matching_objective(model):
    """Within the block only the matching head (`TRAINED_PREFIXES`) requires gradients, and calling `model` (also
    through DDP, whose gradient synchronisation needs the call) runs `matching_forward` instead of its forward, as
    accelerate swaps a model's forward for mixed precision. Both are restored after."""
    frozen = [p for name, p in model.named_parameters() if not name.startswith(TRAINED_PREFIXES) and p.requires_grad]
    swapped = model.__dict__.get("forward")  # a forward already swapped on the instance (accelerate's autocast)
    for parameter in frozen:
        parameter.requires_grad_(False)
    model.forward = types.MethodType(matching_forward, model)
    try:
        yield model
    finally:
        if swapped is None:
            del model.forward
        else:
            model.forward = swapped
        for parameter in frozen:
            parameter.requires_grad_(True)


def matching_phase_arguments(args: APTMTrainingArguments) -> APTMTrainingArguments:
    """The phase's `APTMTrainingArguments`, from the joint run's: `matching_steps` steps at `matching_learning_rate`
    (linear warm-up over `WARMUP` of them, then linear decay; the joint run's AdamW betas, weight decay, clipping,
    batch size, logging and saving intervals), no fast parameter group, no ITM schedule, batches that drop the
    incomplete last one, checkpoints in `<output_dir>/matching_phase`, and no evaluation during the phase
    (`run_matching_phase` evaluates at its end)."""
    return dataclasses.replace(
        args, output_dir=str(Path(args.output_dir) / "matching_phase"), max_steps=args.matching_steps,
        learning_rate=args.matching_learning_rate, lr_schedule="linear", warmup_steps=WARMUP, lr_2=False,
        init_cross=False, text_lr=None, itm_warmup_steps=0, itm_hard_negatives_from=0, matching_steps=0,
        eval_strategy="no", load_best_model_at_end=False, dataloader_drop_last=True, resume_from_checkpoint=None)


def train_matching_head(model, encoded: EncodedTrainingSet, args: APTMTrainingArguments, resume_from_checkpoint=None,
                        **trainer_kwargs) -> APTMTrainer:
    """Train the fusion encoder and ITM head of `model` on an `EncodedTrainingSet` with an `APTMTrainer` of `args`
    (the phase's: see `matching_phase_arguments`), batches of captions drawn by the Trainer's sampler with their
    images. Every other parameter stays as it is. Returns the trainer: its `state.log_history` holds the phase's
    losses (`loss_itm`, and `loss_iam` with attribute labels). `trainer_kwargs` go to `APTMTrainer` (e.g.
    `evaluators`, `processing_class`, `callbacks`)."""
    captions = len(encoded.text_image)
    if args.max_steps < 1 or args.per_device_train_batch_size < 2 or captions < args.train_batch_size * args.world_size:
        raise ValueError(f"the matching phase needs steps >= 1, a batch of >= 2 captions per process and a training "
                         f"set of at least one global batch; got {args.max_steps} steps, batches of "
                         f"{args.per_device_train_batch_size} x {args.world_size} processes and {captions} captions")
    with matching_objective(model):
        trainer = APTMTrainer(model=model, args=args, train_dataset=range(captions),
                              data_collator=CachedBatches(encoded), **trainer_kwargs)
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def run_matching_phase(trainer: APTMTrainer, train_dataset, attributes: bool,
                       metrics: dict) -> tuple[dict, APTMTrainer]:
    """The phase as `run_training` runs it after the joint training: encode the training set with the trainer's
    model, train its matching head (`train_matching_head` with `matching_phase_arguments`; a resumed run resumes the
    phase from its last checkpoint), evaluate with the joint trainer's evaluators, and keep the phase's head unless the
    joint training's scores strictly better on the validation `metric_for_best_model`. Returns the validation
    metrics of the kept model and the phase's trainer (its log and curves are in `<output_dir>/matching_phase`)."""
    args, model = matching_phase_arguments(trainer.args), trainer.accelerator.unwrap_model(trainer.model)
    encoded = encode_training_set(model, trainer.processing_class, train_dataset, attributes,
                                  args.per_device_eval_batch_size, args.matching_cache_gb)
    before = {name: value.detach().clone() for name, value in model.state_dict().items()
              if name.startswith(TRAINED_PREFIXES)}
    resume = None
    if trainer.args.resume_from_checkpoint and Path(args.output_dir).is_dir():
        resume = last_complete_checkpoint(args.output_dir)
    phase = train_matching_head(model, encoded, args, resume, evaluators=trainer.evaluators,
                                processing_class=trainer.processing_class)
    after = phase.evaluate()
    phase.save_state()
    key = f"eval_{args.metric_for_best_model}"
    if key in metrics and key in after:
        # the phase's head is kept unless the joint training's scores strictly better: on a tie (a re-ranking that
        # leans on the cosine can rank both heads' candidates alike) the head trained for matching wins
        worse = after[key] < metrics[key] if args.greater_is_better else after[key] > metrics[key]
        if worse:
            logger.warning("the matching phase scored worse on validation %s (%.2f -> %.2f): the joint training's "
                           "matching head is kept", args.metric_for_best_model, metrics[key], after[key])
            model.load_state_dict(before, strict=False)
            return metrics, phase
    return after, phase
