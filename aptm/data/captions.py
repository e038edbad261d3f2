"""Captions: cleaning per dataset as the original, and EDA (easy data augmentation) with WordNet synonyms read
offline.

WordNet: no PyPI package ships the WordNet database in a form that installs and reads offline here (NLTK downloads
it at run time). The synonyms are read from a WordNet 3.0 `dict` folder: `$APTM_WORDNET_DIR`, an NLTK data folder
(`.../corpora/wordnet`), or Debian's `wordnet-base` package (`/usr/share/wordnet`, which `make install` adds when
apt-get is available). Without one, EDA falls back to random swap and deletion only and says so once.
"""

import logging
import os
import re
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

STOP_WORDS = frozenset(
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself "
    "it its itself they them their theirs themselves what which who whom this that these those am is are was were be "
    "been being have has had having do does did doing a an the and but if or because as until while of at by for "
    "with about against between into through during before after above below to from up down in out on off over "
    "under again further then once here there when where why how all any both each few more most other some such no "
    "nor not only own same so than too very s t can will just don should now".split()
)


def clean_caption(text, dataset=None, max_words=56):
    """The original `pre_caption`: for ICFG-PEDES and RSTPReid lower-case and keep only [0-9a-z] runs; then cut to
    `max_words` whitespace words. Raises on an empty result."""
    if dataset in ("icfg-pedes", "rstpreid"):
        text = re.sub(r"[^0-9a-z]+", " ", text.lower())
    words = text.split()[:max_words]
    if not words:
        raise ValueError(f"caption {text!r} is empty after cleaning")
    return " ".join(words)


class WordNet:
    """Synonyms from a WordNet 3.0 database folder (`index.<pos>` and `data.<pos>` files)."""

    POS = ("noun", "verb", "adj", "adv")

    def __init__(self, root):
        self.root = Path(root)
        self.index = {}
        for pos in self.POS:
            with open(self.root / f"index.{pos}", encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if line.startswith(" ") or not line.strip():
                        continue
                    fields = line.split()
                    count = int(fields[2])
                    self.index.setdefault(fields[0], []).extend((pos, int(o)) for o in fields[-count:])
        self.files = {pos: open(self.root / f"data.{pos}", "rb") for pos in self.POS}

    def synonyms(self, word):
        found = []
        for pos, offset in self.index.get(word.lower(), ()):
            handle = self.files[pos]
            handle.seek(offset)
            fields = handle.readline().decode("utf-8", "replace").split()
            for i in range(int(fields[3], 16)):
                lemma = re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ").lower()
                if lemma != word and lemma not in found and re.fullmatch(r"[a-z ]+", lemma):
                    found.append(lemma)
        return found


def wordnet_dir():
    """The first WordNet database folder found (see the module docstring), or None."""
    candidates = [os.environ.get("APTM_WORDNET_DIR")]
    try:
        import nltk

        candidates += [str(Path(p) / "corpora" / "wordnet") for p in nltk.data.path]
    except ImportError:
        pass
    candidates.append("/usr/share/wordnet")
    return next((c for c in candidates if c and (Path(c) / "index.noun").is_file()), None)


@lru_cache(maxsize=1)
def load_wordnet():
    root = wordnet_dir()
    if root is None:
        logger.warning("no WordNet database found: EDA uses random swap and deletion only "
                       "(install Debian's wordnet-base or set APTM_WORDNET_DIR)")
        return None
    return WordNet(root)


def eda(text, rng, alpha=0.1, deletion_p=0.1, wordnet="auto"):
    """One EDA augmentation of `text` (the original: build a synonym-replacement, random-insertion, random-swap and
    random-deletion variant, keep one at random). Letters and spaces only, lower case. `rng` is a `random.Random`."""
    wordnet = load_wordnet() if wordnet == "auto" else wordnet
    words = re.sub(r"[^a-z ]+", " ", text.lower().replace("-", " ").replace("'", "")).split()
    if not words:
        return text
    count = max(1, int(alpha * len(words)))
    techniques = [_swap, _delete] + ([_replace, _insert] if wordnet is not None else [])
    technique = rng.choice(techniques)
    result = technique(list(words), count if technique is not _delete else deletion_p, rng, wordnet)
    return " ".join(result) if result else rng.choice(words)


def _replace(words, count, rng, wordnet):
    candidates = [w for w in dict.fromkeys(words) if w not in STOP_WORDS]
    rng.shuffle(candidates)
    replaced = 0
    for word in candidates:
        synonyms = wordnet.synonyms(word)
        if synonyms:
            choice = rng.choice(synonyms)
            words = [choice if w == word else w for w in words]
            replaced += 1
        if replaced >= count:
            break
    return words


def _insert(words, count, rng, wordnet):
    for _ in range(count):
        for _ in range(10):
            synonyms = wordnet.synonyms(rng.choice(words))
            if synonyms:
                words.insert(rng.randrange(len(words) + 1), rng.choice(synonyms))
                break
    return words


def _swap(words, count, rng, wordnet):
    for _ in range(count):
        if len(words) > 1:
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    return words


def _delete(words, probability, rng, wordnet):
    if len(words) == 1:
        return words
    return [w for w in words if rng.random() > probability]
