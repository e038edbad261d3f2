"""Ranking encoded person crops by a sentence, an example image of the person, or both. The one source of the rule
that combines the two: `(1 - image_weight) x text + image_weight x image`, each score min-max normalised over
the crops (a fused text score and a cosine similarity have different scales). Imports only numpy and works with any
`retrieval_aptm.TextPersonSearch` (the package's `RetrievalEngine` or the checkpoint's remote code), so the Space
(`space/aptm_parts/`) runs a copy of this module."""

import numpy as np


def normalised(scores):
    """`scores` min-max normalised to [0, 1] (constant scores become zeros)."""
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def combined_scores(text_scores, image_scores, image_weight):
    """`(1 - image_weight) x text + image_weight x image` of the min-max normalised scores `[G]` of a sentence and of
    an example image."""
    return (1 - image_weight) * normalised(text_scores) + image_weight * normalised(image_scores)


def rank_crops(search, gallery, text=None, image=None, top=10, image_weight=0.5, fusion=None):
    r"""
    Indices and scores of the `top` crops best matching a sentence, an example image, or both, best first.

    Args:
        search (`retrieval_aptm.TextPersonSearch`): the search object of the model the crops were encoded with.
        gallery (`retrieval_aptm.EncodedGallery`): the encoded crops.
        text (`str`, *optional*): a description, ranked as `TextPersonSearch.search` ranks (ITM re-ranking).
        image (PIL image or RGB array, *optional*): an example image of the person, ranked by the cosine similarity
            of image features (re-identification).
        top (`int`, *optional*, defaults to 10): results returned (at most the number of crops).
        image_weight (`float`, *optional*, defaults to 0.5): with both, the weight of the example image
            (`combined_scores`).
        fusion (`str`, *optional*): text score fusion of this call (default: the search object's).
    Returns:
        `(indices, scores)`: two lists.
    """
    if text is None and image is None:
        raise ValueError("give a text, an image, or both")
    if not 0 <= image_weight <= 1:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight}")
    top = min(top, len(gallery))
    if image is None:
        result = search.search([text], gallery, top=top, fusion=fusion)[0]
        return result.indices, result.scores
    features = search.encode_images([image])[1].cpu()
    scores = (features @ gallery.image_features.cpu().t())[0].numpy()
    if text is not None:
        text_scores = search.score_matrix([text], gallery, fusion=fusion)[0].cpu().numpy()
        scores = combined_scores(text_scores, scores, image_weight)
    order = np.argsort(-scores, kind="stable")[:top]
    return order.tolist(), scores[order].tolist()
