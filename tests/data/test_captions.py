"""Captions: cleaning per dataset, and EDA with WordNet synonyms looked up as the original (NLTK's `synsets`, which
lemmatises inflected forms), including a warning, once, when there is no WordNet."""

import random
import warnings

import nltk
import pytest

from aptm.data import captions
from aptm.data.captions import WordNet, clean_caption, eda, find_wordnet, load_wordnet, nltk_layout

TAGS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}


def write_wordnet_dict(folder, synsets):
    """A WordNet 3.0 database folder (index, data and exception files, as Debian's wordnet-base) holding `synsets`,
    {pos: [[lemma, ...], ...]}, at the byte offsets the format requires."""
    folder.mkdir(parents=True)
    for pos, tag in TAGS.items():
        lines, offsets = [], {}
        for lemmas in synsets.get(pos, []):
            offset = sum(len(line) for line in lines)
            words = " ".join(f"{lemma} 0" for lemma in lemmas)
            lines.append(f"{offset:08d} 00 {tag} {len(lemmas):02x} {words} 000{' 00' if tag == 'v' else ''} | test\n")
            for lemma in lemmas:
                offsets.setdefault(lemma, []).append(offset)
        (folder / f"data.{pos}").write_text("".join(lines))
        (folder / f"index.{pos}").write_text("".join(
            f"{lemma} {tag} {len(found)} 0 {len(found)} 0 {' '.join(f'{o:08d}' for o in found)}\n"
            for lemma, found in sorted(offsets.items())))
        (folder / f"{pos}.exc").write_text("")
    return folder


@pytest.fixture
def isolated_wordnet(monkeypatch, tmp_path):
    """No WordNet source but what a test adds: NLTK's data path, `$APTM_WORDNET_DIR`, Debian's folder and the
    copy cache all under `tmp_path`; `load_wordnet` forgets its result before and after."""
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.delenv("APTM_WORDNET_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(captions, "SYSTEM_WORDNET", tmp_path / "no-wordnet")
    load_wordnet.cache_clear()
    yield tmp_path
    load_wordnet.cache_clear()


def test_caption_cleaning():
    assert clean_caption("A Man's red-coat, (2 bags)!", "icfg-pedes") == "a man s red coat 2 bags"
    assert clean_caption("A Man's red-coat", "cuhk-pedes") == "A Man's red-coat"
    assert len(clean_caption(" ".join(["w"] * 80)).split()) == 56
    with pytest.raises(ValueError, match="empty"):
        clean_caption("!!!", "rstpreid")


def test_eda_without_wordnet_swaps_or_deletes():
    text = "a woman in a red jacket carries a black bag"
    for seed in range(20):
        out = eda(text, random.Random(seed), wordnet=None).split()
        assert set(out) <= set(text.split()) and out


def test_synonyms_of_inflected_forms_through_nltk(isolated_wordnet, monkeypatch):
    source = write_wordnet_dict(isolated_wordnet / "dict", {"noun": [["shoe", "footwear"], ["bag", "handbag"]],
                                                            "verb": [["wear", "have_on"]]})
    monkeypatch.setenv("APTM_WORDNET_DIR", str(source))
    root = find_wordnet()
    assert root.is_relative_to(isolated_wordnet / "cache" / "aptm") and nltk_layout(source) == root
    corpus = root / "corpora" / "wordnet"
    assert len((corpus / "lexnames").read_text().splitlines()) == 45 and (corpus / "index.sense").is_file()
    wordnet = load_wordnet()
    # "shoes" and "wearing" are no lemmas of this WordNet: NLTK's synsets() lemmatises them, as in the original
    assert wordnet.synonyms("shoes") == ["shoe", "footwear"]
    assert wordnet.synonyms("wearing") == ["wear", "have on"]
    assert wordnet.synonyms("shoe") == ["footwear"] and wordnet.synonyms("coat") == []
    text = "a woman wearing black shoes"
    outputs = {eda(text, random.Random(seed), wordnet=wordnet) for seed in range(40)}
    assert any("footwear" in out.split() for out in outputs) and any("have on" in out for out in outputs)


def test_missing_wordnet_warns_once(isolated_wordnet):
    text = "a woman in a red jacket carries a black bag"
    with pytest.warns(UserWarning, match="no WordNet data found: EDA uses random swap and deletion only"):
        first = eda(text, random.Random(0))
    assert set(first.split()) <= set(text.split())
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        eda(text, random.Random(1))
        load_wordnet()
    assert not later


def test_system_wordnet_lemmatises_when_installed():
    if not (captions.SYSTEM_WORDNET / "index.noun").is_file():
        pytest.skip("Debian's wordnet-base is not installed")
    wordnet = WordNet(nltk_layout(captions.SYSTEM_WORDNET))
    assert "shoe" in wordnet.synonyms("shoes") and "wear" in wordnet.synonyms("wearing")
    assert "carry" in wordnet.synonyms("carrying") and "denim" in wordnet.synonyms("jeans")


def test_eda_inserts_before_the_last_word_and_drops_apostrophes(isolated_wordnet):
    wordnet = WordNet(nltk_layout(write_wordnet_dict(isolated_wordnet / "dict", {"noun": [["shoe", "footwear"]]})))
    text = "a woman wearing black shoes"
    outputs = [eda(text, random.Random(seed), wordnet=wordnet).split() for seed in range(80)]
    inserted = [words for words in outputs if len(words) > 5]  # the other techniques keep or drop words
    assert len(inserted) > 5 and all(words[-1] == "shoes" for words in inserted)  # randint(0, n - 1), as the original
    for seed in range(10):
        assert set(eda("The man\u2019s coat", random.Random(seed), wordnet=None).split()) <= {"the", "mans", "coat"}
