"""The original evaluation procedures written out plainly, one query or one image at a time: the references the
engine's and the attribute recognizer's scores are tested and benchmarked against (`tests/retrieval/test_engine.py`,
`tests/retrieval/test_attributes.py`, `tests/scripts/test_evaluate.py`, `scripts/benchmark.py`)."""

import torch

from retrieval_aptm import SENTINEL


def min_max(matrix: torch.Tensor) -> torch.Tensor:
    """Min-max normalise a whole matrix to [0, 1] (a constant matrix becomes zeros)."""
    low, high = matrix.min(), matrix.max()
    return (matrix - low) / (high - low) if high > low else torch.zeros_like(matrix)


@torch.no_grad()
def original_procedure_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                              image_embeds: torch.Tensor, image_features: torch.Tensor, k: int,
                              cosine_weight: float = 0.002) -> torch.Tensor:
    """Final `[Q, G]` scores of the original evaluator, one query at a time: text padded to its full length (as
    `input_ids` `[Q, L]` and `attention_mask` come), top-k images by cosine with the normalised `image_features`
    `[G, E]`, ITM logit[1] of each (text, candidate) pair with the candidate's image tokens (`image_embeds`
    `[G, 1 + N, C]`) through the fusion encoder again for every pair, then the single-process `"aptm"` fusion.
    `model` is an `APTMModel`."""
    text_embeds = model.text_model(input_ids, attention_mask).last_hidden_state
    text_features = model.text_features_from_embeds(text_embeds)
    cosine = text_features @ image_features.t()
    scores = torch.full_like(cosine, SENTINEL)
    for row in range(len(cosine)):
        _, top = cosine[row].topk(k)
        logits = model.itm_logits(text_embeds[row : row + 1].repeat(k, 1, 1), attention_mask[row : row + 1].repeat(k, 1),
                                  image_embeds[top])
        scores[row, top] = logits[:, 1]
    scores = torch.where(scores == SENTINEL, scores.min(dim=1, keepdim=True).values, scores)
    return min_max(scores) + cosine_weight * min_max(cosine)


@torch.no_grad()
def per_image_attribute_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               pixel_values: torch.Tensor) -> torch.Tensor:
    """ITM logit[1] `[N, P]` of every attribute prompt (`input_ids`, `attention_mask` `[P, L]`) with each image of
    `pixel_values` `[N, 3, H, W]`, one image at a time as the original PA-100K evaluation: the prompts' text states
    once, the images' tokens in one batch, then each image's tokens through the fusion encoder with every prompt.
    `model` is an `APTMModel`."""
    prompt_embeds = model.text_model(input_ids, attention_mask).last_hidden_state
    image_embeds = model.vision_model(pixel_values).last_hidden_state
    return torch.stack([model.itm_logits(prompt_embeds, attention_mask, image.expand(len(input_ids), -1, -1))[:, 1]
                        for image in image_embeds])
