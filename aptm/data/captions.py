"""Captions: cleaning per dataset as the original, and EDA (easy data augmentation) with WordNet synonyms looked up
as the original does, through NLTK's WordNet reader (`synsets(word)` lemmatises inflected forms first: "shoes",
"wearing" have synonyms).

WordNet data, read offline, first found of: `$APTM_WORDNET_DIR` (a WordNet 3.0 `dict` folder), NLTK's own data
(`corpora/wordnet` on `nltk.data.path`, e.g. from `nltk.download("wordnet")`), Debian's `wordnet-base` package
(`/usr/share/wordnet`, which `make install` adds when apt-get is available). NLTK reads only its own layout inside its
data path, without links, so a `dict` folder is copied once into `~/.cache/aptm/nltk_data-<hash>/corpora/wordnet`
(`$XDG_CACHE_HOME` is honoured) with the two files Debian does not ship: `lexnames` (the fixed table of WordNet 3.0's
lexicographer files) and an empty `index.sense` (sense keys, which EDA does not use). Without WordNet, EDA falls back
to random swap and deletion only and warns once.
"""

import hashlib
import os
import re
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

STOP_WORDS = frozenset(
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself "
    "it its itself they them their theirs themselves what which who whom this that these those am is are was were be "
    "been being have has had having do does did doing a an the and but if or because as until while of at by for "
    "with about against between into through during before after above below to from up down in out on off over "
    "under again further then once here there when where why how all any both each few more most other some such no "
    "nor not only own same so than too very s t can will just don should now".split()
)

SYSTEM_WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base
# WordNet 3.0's lexicographer files in file-number order (the `lexnames` file, see lexnames(5WN))
LEXICOGRAPHER_FILES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
SYNTACTIC_CATEGORIES = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
DATABASE_FILES = [f"{kind}.{pos}" for pos in ("noun", "verb", "adj", "adv") for kind in ("index", "data")] + [
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]
MISSING_WORDNET = ("no WordNet data found: EDA uses random swap and deletion only, without the original's synonym "
                   "replacement and insertion (install Debian's wordnet-base, run nltk.download('wordnet'), or set "
                   "APTM_WORDNET_DIR to a WordNet 3.0 dict folder)")


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
    """Synonyms as the original EDA's `get_synonyms`, from NLTK's WordNet reader over `<nltk_data>/corpora/wordnet`
    (`nltk_data` is put first on NLTK's data path, the only place NLTK reads from)."""

    def __init__(self, nltk_data):
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        nltk_data = str(nltk_data)
        if nltk_data not in nltk.data.path:
            nltk.data.path.insert(0, nltk_data)
        with warnings.catch_warnings():  # EDA needs no multilingual WordNet
            warnings.filterwarnings("ignore", "The multilingual functions are not available")
            self.reader = WordNetCorpusReader(nltk.data.find("corpora/wordnet", paths=[nltk_data]), None)

    def synonyms(self, word):
        """The lemma names of every synset of `word` (inflected forms included), underscores and hyphens as spaces,
        letters and spaces only, without `word` itself. (Names with no letter left, which the original keeps as an
        empty word, are dropped.)"""
        found = {}
        for synset in self.reader.synsets(word):
            for lemma in synset.lemmas():
                name = re.sub(r"[^a-z ]", "", lemma.name().replace("_", " ").replace("-", " ").lower())
                if name.strip():
                    found[name] = None
        found.pop(word, None)
        return list(found)


def nltk_layout(dict_folder):
    """An NLTK data folder holding a copy of the WordNet database `dict_folder` as `corpora/wordnet`, with `lexnames`
    and `index.sense` added when missing (see the module docstring). Built once per source folder, atomically."""
    dict_folder = Path(dict_folder).resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aptm"
    root = cache / f"nltk_data-{hashlib.sha256(str(dict_folder).encode()).hexdigest()[:12]}"
    if (root / "corpora" / "wordnet" / "lexnames").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache))
    corpus = staging / "corpora" / "wordnet"
    corpus.mkdir(parents=True)
    for name in DATABASE_FILES + ["lexnames", "index.sense"]:
        if (dict_folder / name).is_file():
            shutil.copyfile(dict_folder / name, corpus / name)
    if not (corpus / "lexnames").is_file():
        (corpus / "lexnames").write_text("".join(
            f"{number:02d}\t{name}\t{SYNTACTIC_CATEGORIES[name.split('.')[0]]}\n"
            for number, name in enumerate(LEXICOGRAPHER_FILES)))
    (corpus / "index.sense").touch()
    try:
        staging.rename(root)
    except OSError:  # another process built it first
        shutil.rmtree(staging)
    return root


def find_wordnet():
    """The NLTK data folder to read WordNet from (see the module docstring), or None."""
    try:
        import nltk
    except ImportError:
        return None
    configured = os.environ.get("APTM_WORDNET_DIR")
    if configured and (Path(configured) / "index.noun").is_file():
        return nltk_layout(configured)
    for path in nltk.data.path:
        if (Path(path) / "corpora" / "wordnet").is_dir() or (Path(path) / "corpora" / "wordnet.zip").is_file():
            return Path(path)
    if (SYSTEM_WORDNET / "index.noun").is_file():
        return nltk_layout(SYSTEM_WORDNET)
    return None


@lru_cache(maxsize=1)
def load_wordnet():
    """The `WordNet` EDA uses, or None (with a warning, once per process) when there is no WordNet data."""
    root = find_wordnet()
    if root is None:
        warnings.warn(MISSING_WORDNET, stacklevel=2)
        return None
    return WordNet(root)


def eda(text, rng, alpha=0.1, deletion_p=0.1, wordnet="auto"):
    """One EDA augmentation of `text` (the original: build a synonym-replacement, random-insertion, random-swap and
    random-deletion variant, keep one at random). Letters and spaces only, lower case. `rng` is a `random.Random`."""
    wordnet = load_wordnet() if wordnet == "auto" else wordnet
    words = re.sub(r"[^a-z ]+", " ", text.lower().replace("-", " ").replace("'", "").replace("\u2019", "")).split()
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
                words.insert(rng.randrange(len(words)), rng.choice(synonyms))  # never at the end, as the original
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
