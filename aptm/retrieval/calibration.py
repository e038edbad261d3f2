"""A calibrated image-text match probability: the ITM head is a binary classifier, and its probability
`sigmoid(margin)` (`margin` = match logit - no-match logit) is made calibrated by one temperature, `sigmoid(margin /
T)`, fitted on held-out pairs by the smallest negative log-likelihood (Guo et al. 2017, "On calibration of modern
neural networks"). The temperature travels with the checkpoint as `calibration.json`, with the expected calibration
error (ECE) before and after and the pairs it was fitted on; `scripts/calibrate.py` fits and writes it.
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

CALIBRATION_FILE = "calibration.json"


@torch.no_grad()
def itm_margins(model, text_embeds, attention_mask, image_embeds):
    """Match logit minus no-match logit `[N]` of N (text, image) pairs: text states `[N, L, H]` with their mask, image
    tokens `[N, 1 + P, C]`."""
    logits = model.itm_logits(text_embeds, attention_mask, image_embeds=image_embeds).float()
    return logits[:, 1] - logits[:, 0]


@torch.no_grad()
def pair_margins(engine, texts, images):
    """`itm_margins` of the pairs `(texts[i], images[i])`, encoded by `engine` (a `retrieval_aptm.Encoder`) in its
    batches."""
    if len(texts) != len(images):
        raise ValueError(f"{len(texts)} texts for {len(images)} images: give one text per image")
    margins = []
    for start in range(0, len(texts), engine.batch_size):
        text_embeds, mask, _ = engine.encode_text_batch(texts[start : start + engine.batch_size])
        image_embeds, _ = engine.encode_images(images[start : start + engine.batch_size])
        margins.append(itm_margins(engine.model, text_embeds, mask, image_embeds).cpu())
    return torch.cat(margins)


def negative_log_likelihood(margins, labels, temperature):
    """Mean binary cross-entropy of `sigmoid(margins / temperature)` against `labels` (1 match, 0 not)."""
    margins, labels = np.asarray(margins, np.float64), np.asarray(labels, np.float64)
    scaled = margins / temperature
    return float(np.mean(np.logaddexp(0, scaled) - labels * scaled))


def fit_temperature(margins, labels, low=1e-2, high=1e2, steps=100):
    """The temperature in `[low, high]` with the smallest `negative_log_likelihood`, by golden-section search on
    `log T` (the likelihood is unimodal in it)."""
    labels = np.asarray(labels)
    if not len(labels) or len(set(labels.tolist())) < 2:
        raise ValueError("fitting a temperature needs held-out pairs of both kinds (matches and non-matches)")
    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(low), math.log(high)
    for _ in range(steps):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if negative_log_likelihood(margins, labels, math.exp(c)) <= negative_log_likelihood(margins, labels,
                                                                                           math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def reliability(probabilities, labels, bins=10):
    """Per equal-width probability bin: `(count, mean probability, share of matches)`, and the expected calibration
    error, the count-weighted mean gap between the two."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    table, error = [], 0.0
    for b in range(bins):
        chosen = which == b
        count = int(chosen.sum())
        if count:
            confidence, accuracy = float(probabilities[chosen].mean()), float(labels[chosen].mean())
            error += count * abs(confidence - accuracy)
            table.append((count, confidence, accuracy))
        else:
            table.append((0, None, None))
    return table, error / max(len(labels), 1)


def held_out_pairs(queries, gallery, negatives=1, seed=0):
    """`(texts, images, labels)`: each query's caption with an image of its person (label 1) and with `negatives`
    images of other people drawn at random (label 0). `queries` has `caption` and `person_id` columns, `gallery`
    `image` and `person_id` (a dataset split's `*_queries` and `*_gallery`)."""
    rng = np.random.default_rng(seed)
    people = np.asarray(gallery["person_id"])
    texts, rows, labels = [], [], []
    for caption, person in zip(queries["caption"], queries["person_id"]):
        own, others = np.flatnonzero(people == person), np.flatnonzero(people != person)
        if not len(own) or not len(others):
            continue
        chosen = [int(rng.choice(own))] + rng.choice(others, size=min(negatives, len(others)), replace=False).tolist()
        texts += [caption] * len(chosen)
        rows += chosen
        labels += [1] + [0] * (len(chosen) - 1)
    if not labels:
        raise ValueError("no query has both an image of its person and of another person in the gallery")
    return texts, [gallery[row]["image"] for row in rows], labels


def reliability_diagram(before, after, path, bins=10):
    """Save a reliability diagram of two `reliability` tables (the head's probability and the calibrated one): per
    bin, the share of matches against the mean probability, the diagonal being perfect calibration. Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    for table, label in ((before, "ITM head"), (after, "temperature-scaled")):
        points = [(confidence, accuracy) for count, confidence, accuracy in table if count]
        ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xlabel("mean predicted match probability (per bin)")
    ax.set_ylabel("share of true matches")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


@dataclass
class Calibration:
    """A fitted temperature and how it was measured: `pairs` (held-out pairs fitted on, `matches` of them true),
    `data` (what they were and where the errors were measured), expected calibration error before and after (10
    bins)."""

    temperature: float = 1.0
    pairs: int = 0
    matches: int = 0
    data: str = ""
    ece_before: float = None
    ece_after: float = None

    @classmethod
    def fit(cls, margins, labels, data=""):
        """Fit the temperature on held-out `margins` and `labels` (what `data` says they are)."""
        labels = np.asarray(labels)
        return cls(fit_temperature(margins, labels), len(labels), int(labels.sum()), data)

    def measure(self, margins, labels):
        """Set the expected calibration errors before (the head's probability) and after (this temperature) on
        `margins` and `labels` (better other held-out pairs than those fitted on); returns the reliability tables
        `(before, after)`."""
        margins = np.asarray(margins, np.float64)
        before, self.ece_before = reliability(1 / (1 + np.exp(-margins)), labels)
        after, self.ece_after = reliability(self.probability(margins), labels)
        return before, after

    def probability(self, margins):
        """Calibrated match probabilities of ITM margins (array or tensor, the same type back)."""
        if isinstance(margins, torch.Tensor):
            return torch.sigmoid(margins / self.temperature)
        return 1 / (1 + np.exp(-np.asarray(margins, np.float64) / self.temperature))

    def save(self, folder):
        """Write `calibration.json` into a checkpoint folder; returns its path."""
        path = Path(folder) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder):
        """The calibration stored in a checkpoint folder, or an uncalibrated one (temperature 1, no pairs) when it has
        none (a Hub id, or a folder without `calibration.json`)."""
        path = Path(folder) / CALIBRATION_FILE
        if not path.is_file():
            return cls()
        fields = json.loads(path.read_text())
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown or not isinstance(fields.get("temperature"), (int, float)) or fields["temperature"] <= 0:
            raise ValueError(f"{path}: not a calibration (a positive `temperature`, and only the fields "
                             f"{sorted(cls.__dataclass_fields__)}; found {sorted(fields)})")
        return cls(**fields)

    @property
    def fitted(self):
        """Whether the temperature was fitted (else the head's raw probability is used)."""
        return self.pairs > 0
