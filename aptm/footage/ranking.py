"""Ranking encoded person crops by a sentence, an example image of the person, or both. The one source of the rule
that combines the two: `(1 - image_weight) x text + image_weight x image`, each score min-max normalised over
the crops (a fused text score and a cosine similarity have different scales); and the one source of a track's
encoding (`track_gallery`). Imports only numpy and torch and works with any `retrieval_aptm.TextPersonSearch` (the
package's `RetrievalEngine` or the checkpoint's remote code), so the Space (`space/aptm_parts/`) runs a copy of this
module."""

import numpy as np
import torch


def normalised(scores):
    """`scores` min-max normalised to [0, 1] (constant scores become zeros)."""
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def combined_scores(text_scores, image_scores, image_weight):
    """`(1 - image_weight) x text + image_weight x image` of the min-max normalised scores `[G]` of a sentence and of
    an example image."""
    return (1 - image_weight) * normalised(text_scores) + image_weight * normalised(image_scores)


def gallery_rows(gallery, rows):
    """The encoded gallery's `rows` (a list of indices), of `gallery`'s type; the gallery itself when they are all of
    it in order (a search object's cached cross-attention keys of it then serve again)."""
    if list(rows) == list(range(len(gallery))):
        return gallery
    rows = torch.tensor(rows, dtype=torch.long)
    return type(gallery)(gallery.image_features[rows], gallery.image_embeds[rows])


def track_gallery(gallery, crops, best):
    """An encoded gallery (of `gallery`'s type) with one row per track: its feature the normalised mean of its crops'
    features, its image tokens (what ITM re-ranking attends to) those of its best crop.

    Args:
        gallery (`retrieval_aptm.EncodedGallery`): the encoded crops.
        crops (`list[list[int]]`): per track, its rows of `gallery`.
        best (`list[int]`): per track, the row of its best crop.
    """
    features = torch.stack([gallery.image_features[rows].mean(0) for rows in crops])
    return type(gallery)(torch.nn.functional.normalize(features, dim=-1), gallery.image_embeds[torch.tensor(best)])


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


def rank_tracks(search, tracks, gallery, crops, text=None, image=None, top=10, image_weight=0.5, fusion=None):
    r"""
    The `top` tracks (people) best matching a sentence, an example image, or both, best first, each with its
    best-matching moment: of the crops of the tracks found, the one that `rank_crops` ranks highest.

    Args:
        search (`retrieval_aptm.TextPersonSearch`): the search object of the model the crops were encoded with.
        tracks (`retrieval_aptm.EncodedGallery`): the tracks, encoded by `track_gallery`.
        gallery (`retrieval_aptm.EncodedGallery`): the encoded crops.
        crops (`list[list[int]]`): per track, its rows of `gallery`.
        text, image, top, image_weight, fusion: as `rank_crops`.
    Returns:
        `list` of `(track, score, moment, moment_score)`: the track's index in `tracks`, its score, the row of its
        best-matching crop in `gallery` and that crop's score (among the crops of the tracks found).
    """
    indices, scores = rank_crops(search, tracks, text, image, top, image_weight, fusion)
    rows = [row for index in indices for row in crops[index]]
    owner = {row: index for index in indices for row in crops[index]}
    order, moment_scores = rank_crops(search, gallery_rows(gallery, rows), text, image, len(rows), image_weight,
                                      fusion)
    moments = {}
    for position, score in zip(order, moment_scores):
        moments.setdefault(owner[rows[position]], (rows[position], score))
    return [(index, score, *moments[index]) for index, score in zip(indices, scores)]
