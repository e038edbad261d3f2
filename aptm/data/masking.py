"""Whole-word masking for the image-conditioned MLM, with the original APTM semantics: mask 25% of the length (at
most 10 positions), spans of 2-3 tokens with probability 0.2, whole words, 80% [MASK] / 10% random id / 10% kept.

The original counts padding in the length and can mask [PAD] positions (target: the pad id). Here padding is never
masked by default; `mask_padding=True` restores the original behaviour."""

import random

# The original's masking settings, the defaults of the masker, the collator and the training arguments.
MASK_PROBABILITY = 0.25
MAX_MASKS = 10
SPAN_PROBABILITY = 0.2
MAX_SPAN = 3


class WholeWordMasker:
    """Mask token ids of one sequence. `tokenizer` gives the [MASK]/[PAD] ids, the vocabulary size and the word
    pieces (`##` continuations)."""

    def __init__(self, tokenizer, mask_probability=MASK_PROBABILITY, max_masks=MAX_MASKS,
                 span_probability=SPAN_PROBABILITY, max_span=MAX_SPAN, mask_padding=False):
        self.mask_id, self.pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
        self.vocab_size = len(tokenizer)
        self.continuation = {i for token, i in tokenizer.get_vocab().items() if token.startswith("##")}
        self.mask_probability, self.max_masks = mask_probability, max_masks
        self.span_probability, self.max_span = span_probability, max_span
        self.mask_padding = mask_padding

    def positions(self, input_ids, attention_mask, rng):
        """Positions to mask (never [CLS] at 0; never padding unless `mask_padding`); `rng` is a `random.Random`."""
        length = len(input_ids) if self.mask_padding else int(sum(attention_mask))
        budget = min(self.max_masks, max(1, round(length * self.mask_probability)))
        candidates = list(range(1, length))
        rng.shuffle(candidates)
        chosen = set()
        for start in candidates:
            if len(chosen) >= budget:
                break
            if start in chosen:
                continue
            span = rng.randint(2, self.max_span) if rng.random() < self.span_probability else 1
            end = min(start + span, length)
            while start > 1 and input_ids[start] in self.continuation:
                start -= 1
            while end < length and input_ids[end] in self.continuation:
                end += 1
            chosen.update(range(start, end))
        chosen = sorted(chosen)
        if len(chosen) > budget:
            rng.shuffle(chosen)
            chosen = sorted(chosen[:budget])
        return chosen

    def __call__(self, input_ids, attention_mask, rng=random):
        """Returns `(masked_ids, positions, labels)`: the ids with replacements, the masked positions padded with 0 to
        `max_masks`, and their original ids padded with -100."""
        input_ids = list(input_ids)
        positions = self.positions(input_ids, attention_mask, rng)
        masked = list(input_ids)
        for position in positions:
            draw = rng.random()
            if draw < 0.8:
                masked[position] = self.mask_id
            elif draw < 0.9:
                masked[position] = rng.randrange(self.vocab_size)
        padding = self.max_masks - len(positions)
        labels = [input_ids[p] for p in positions] + [-100] * padding
        return masked, positions + [0] * padding, labels
