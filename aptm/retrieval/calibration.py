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


@dataclass
class Calibration:
    """A fitted temperature and how it was measured: `pairs` (held-out pairs fitted on, `matches` of them true),
    `data` (what they were), expected calibration error before and after (10 bins)."""

    temperature: float = 1.0
    pairs: int = 0
    matches: int = 0
    data: str = ""
    ece_before: float = None
    ece_after: float = None

    @classmethod
    def fit(cls, margins, labels, data=""):
        """Fit the temperature on held-out `margins` and `labels`; measures the ECE before and after."""
        margins, labels = np.asarray(margins, np.float64), np.asarray(labels)
        temperature = fit_temperature(margins, labels)
        fitted = cls(temperature, len(labels), int(labels.sum()), data)
        fitted.ece_before = reliability(1 / (1 + np.exp(-margins)), labels)[1]
        fitted.ece_after = reliability(fitted.probability(margins), labels)[1]
        return fitted

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
