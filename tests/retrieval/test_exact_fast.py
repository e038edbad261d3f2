"""The exact-fast re-ranking: on a gallery built to have near-ties (each image four times, slightly perturbed), int8
alone reorders the top n while exact-fast keeps fp32's top n and its scores; which candidates it re-scores and why; an
error beyond the bound redoes the group in fp32; the option through `scripts/evaluate.py`."""

import functools
import importlib.util

import pytest
import torch

import aptm
import aptm.evaluation
from aptm.retrieval import ExactFastStats, RetrievalEngine, cpu_features, default_low_precision, exact_rescoring_mask
from datasets_scripts import load_aptm_dataset
from retrieval_aptm import EncodedGallery

from helpers.models import tiny_config
from helpers.paths import REPO

TOP, K = 3, 32
TEXTS = [f"a person {pose} with a {colour} bag" for pose in ("walking", "standing", "running", "sitting")
         for colour in ("red", "blue", "black", "white", "green")]


@pytest.fixture(scope="module")
def near_ties():
    """A tiny model whose ITM logits depend strongly on the image (its cross-attention values and outputs scaled up,
    so that their spread is well above int8's error) and a gallery of 12 random token sets, each 4 times with a small
    perturbation: near-tied candidates at every rank."""
    torch.manual_seed(0)
    model = aptm.APTMModel(tiny_config()).eval()
    with torch.no_grad():
        for layer in model.fusion_model.layer:
            layer.crossattention.self.value.weight.mul_(20)
            layer.crossattention.output.dense.weight.mul_(20)
    generator = torch.Generator().manual_seed(1)
    vision = model.config.vision_config
    tokens = torch.randn(12, 49, vision.embed_dim * 2 ** (len(vision.depths) - 1), generator=generator)
    embeds = 10 * tokens.repeat_interleave(4, 0) + 0.05 * torch.randn(48, *tokens.shape[1:], generator=generator)
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.image_features_from_embeds(embeds), dim=-1)
    return model, aptm.build_processor(), EncodedGallery(features, embeds)


def engine(model, processor, precision, **options):
    search = RetrievalEngine(model, processor, k=K, query_batch_size=4, progress=False, precision=precision,
                             exact_top=TOP, **options)
    search.calibration_pairs = 4 * K  # the first group calibrates on its 4 x K logits, the other groups select
    return search


def top_n(scores):
    return scores.argsort(dim=1, descending=True, stable=True)[:, :TOP]


def test_exact_fast_keeps_fp32_top_n_where_int8_reorders_it(near_ties):
    model, processor, gallery = near_ties
    fp32 = engine(model, processor, "fp32").score_matrix(TEXTS, gallery)
    int8 = engine(model, processor, "int8").score_matrix(TEXTS, gallery)
    assert (top_n(int8) != top_n(fp32)).any(dim=1).sum() >= len(TEXTS) // 2  # near-ties: int8 alone reorders
    exact_fast = engine(model, processor, "exact-fast", low_precision="int8")
    scores = exact_fast.score_matrix(TEXTS, gallery)
    assert torch.equal(top_n(scores), top_n(fp32))
    rows = torch.arange(len(TEXTS))[:, None]
    torch.testing.assert_close(scores[rows, top_n(fp32)], fp32[rows, top_n(fp32)], rtol=0, atol=1e-5)
    stats = exact_fast.exact_fast_stats
    assert stats.pairs == len(TEXTS) * K
    assert 4 * K < stats.rescored < stats.pairs  # calibration, then only some candidates in fp32
    assert stats.largest_error > 0 and stats.error_bound == pytest.approx(4 * stats.largest_error)


def test_exact_fast_search_and_test_time_flip_views(near_ties):
    model, processor, gallery = near_ties
    flipped = EncodedGallery(gallery.image_features, gallery.image_embeds,
                             flipped_image_embeds=gallery.image_embeds.flip(1))
    for encoded in (gallery, flipped):
        expected = engine(model, processor, "fp32").search(TEXTS[:8], encoded, top=TOP)
        found = engine(model, processor, "exact-fast", low_precision="int8").search(TEXTS[:8], encoded, top=TOP)
        assert [result.indices for result in found] == [result.indices for result in expected]


def test_rescoring_mask_keeps_in_low_precision_only_what_n_candidates_surely_beat():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])[..., None]
    descending = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    # two candidates surely above: from the third on, except the lowest (its logit sets the fill and normalisation)
    assert exact_rescoring_mask(logits, descending, 2, 0.1).tolist() == [[True, True, False, False, False, True]]
    # a gap of 2 x bound is not sure: 4 - 3 is not above 2 x 0.5, so only one candidate is surely above the third,
    # and the fifth lies within 2 x 0.5 of the lowest
    assert exact_rescoring_mask(logits, descending, 2, 0.5).tolist() == [[True, True, True, False, True, True]]
    # a higher logit with a lower cosine does not surely rank above: every candidate is re-scored
    assert exact_rescoring_mask(logits, descending.flip(1), 2, 0.1).all()
    # two views: surely above in both
    views = torch.cat([logits, logits.flip(1)], dim=-1)
    assert exact_rescoring_mask(views, descending, 2, 0.1).all()


def test_error_beyond_the_bound_redoes_the_group_in_fp32_and_widens_the_bound(near_ties):
    model, processor, gallery = near_ties
    fp32 = engine(model, processor, "fp32").score_matrix(TEXTS, gallery)
    exact_fast = engine(model, processor, "exact-fast", low_precision="int8")
    exact_fast.score_matrix(TEXTS[:4], gallery)  # calibrates
    exact_fast.exact_fast_stats = ExactFastStats(error_bound=1e-9)  # a bound every re-scored logit exceeds
    scores = exact_fast.score_matrix(TEXTS, gallery)
    assert torch.equal(top_n(scores), top_n(fp32))
    stats = exact_fast.exact_fast_stats
    assert 1e-9 < stats.largest_error <= stats.error_bound  # widened to 4x the largest error of the redone group
    assert stats.rescored > 4 * K  # the first group redone in fp32, then the widened bound selects


def test_precision_options_are_checked(near_ties):
    model, processor, _ = near_ties
    with pytest.raises(ValueError, match="precision must be one of"):
        RetrievalEngine(model, processor, precision="fp8")
    with pytest.raises(ValueError, match="autocast applies to the fp32 and bf16"):
        RetrievalEngine(model, processor, precision="exact-fast", autocast=torch.bfloat16)
    with pytest.raises(ValueError, match="low_precision must be one of"):
        RetrievalEngine(model, processor, precision="exact-fast", low_precision="fp16")
    assert RetrievalEngine(model, processor, precision="bf16").autocast is torch.bfloat16
    features = cpu_features()
    expected = "bf16" if features["avx512_bf16"] or features["amx_bf16"] else "int8"
    assert default_low_precision(torch.device("cpu")) == expected
    assert default_low_precision(torch.device("cuda")) == "bf16"
    assert RetrievalEngine(model, processor, precision="exact-fast").low_precision == expected


def test_evaluate_cli_precision_option(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model, processor = aptm.APTMModel(tiny_config()).eval(), aptm.build_processor()
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    spec = importlib.util.spec_from_file_location("evaluate_cli", REPO / "scripts" / "evaluate.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    small = {"num_identities": 10, "views_per_identity": 2, "test_fraction": 0.3}
    script.load_aptm_dataset = functools.partial(load_aptm_dataset, **small)
    engines = []
    monkeypatch.setattr(aptm.evaluation, "RetrievalEngine",
                        lambda *args, **options: engines.append(RetrievalEngine(*args, **options)) or engines[-1])
    results = {}
    for precision in ("fp32", "exact-fast"):
        results[precision] = script.main([
            "--model", str(tmp_path / "model"), "--dataset", "procedural", "--data-dir", str(tmp_path / "data"),
            "--output-dir", str(tmp_path / precision), "--k", "3", "--precision", precision, "--exact-top", "2"])
    assert [(engine.precision, engine.exact_top) for engine in engines] == [("fp32", 2), ("exact-fast", 2)]
    assert engines[1].exact_fast_stats.pairs == 12 * 3  # every query's 3 candidates in low precision
    assert results["exact-fast"]["retrieval"] == pytest.approx(results["fp32"]["retrieval"], abs=1e-6)
