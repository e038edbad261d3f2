"""Benchmark the retrieval engine in fp32 and bf16 (`autocast=torch.bfloat16`) against the original evaluation as
`aptm.retrieval.reference` writes it out (one query at a time, text padded to 56, top-k cosine candidates, image
keys/values recomputed for every pair), side by side in one run on the same weights, gallery and queries. Prints one
table per configuration: image encoder throughput beside its matmul ceiling (its matrix products alone, each shape
timed now), gallery encoding, one-query latency with a cached gallery, full evaluation with the ratios; then the
re-rank FLOP floor at the matmul rate measured in the same run, the fp32 engine's time per stage, and how each
engine's rankings agree with the original procedure's: identical except swaps of images whose reference scores are
within `--tolerance` (near-ties: a random-initialised model has near-tied ITM logits), counted, with the largest
score difference. The run fails if the fp32 engine swaps images farther apart than that. The default (tiny: 100
queries x 200 images, k=128; paper size: 16 queries x 48 images, k=48) takes a few minutes on 2 cores.

    python scripts/benchmark.py                       # tiny and paper-size (reduced gallery) configurations
    python scripts/benchmark.py --configs tiny --gallery 400 --queries 200
    python scripts/benchmark.py --memory 2000x1000,8000x4000,32000x16000   # evaluation memory table only
    python scripts/benchmark.py --index 100000        # a memory-mapped synthetic index only
    python scripts/benchmark.py --prep 20000          # dataset preparation, num_proc 1 and 2, only
    python scripts/benchmark.py --attributes 64       # attribute scoring, per-image loop vs fused batch, only
    python scripts/benchmark.py --agreement outputs/quickstart/checkpoint outputs/quickstart/data   # fp32 vs bf16
    python scripts/benchmark.py --onnx outputs/quickstart/checkpoint outputs/quickstart/data   # torch vs ONNX fp32/int8
    python scripts/benchmark.py --footage vtest.avi outputs/quickstart/checkpoint   # footage indexing, 1 and 2 threads

`--memory QUERIESxGALLERY,...` measures instead, side by side, the peak memory of evaluation (tiny configuration, a
synthetic gallery index, k = 16, the engine's default query batch) through the whole score matrix (`retrieval_metrics`
of `score_matrix`) and streamed in query chunks (`RetrievalEngine.evaluate`), each in a fresh process, as growth of
peak RSS above that process's baseline once model, index and captions are built and 64 queries evaluated (the
gallery's share: its cross-attention keys/values), with the size of one full fp32 score matrix beside them; sizes
sharing a gallery add a line with what the extra queries added, streamed, against the size of their score rows.

`--index IMAGES` writes a synthetic float16 index of that many images (tiny configuration's shapes) shard by shard,
loads it memory-mapped and reports its size, the resident memory it adds (loaded, then after a few searches) and the
latency of one query, dual encoder and re-ranking the top 16 (`memory_mapped_index_table`).
"""

import argparse
import os
import resource
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

import aptm
import modeling_aptm
from aptm.data.captions import clean_caption
from aptm.export import ONNX_STAGES, int8_name
from aptm.factory import load_checkpoint
from aptm.metrics import retrieval_metrics
from aptm.retrieval import (PRECISIONS, AttributeRecognizer, GalleryIndex, RetrievalEngine, cpu_features,
                            default_low_precision)
from aptm.retrieval.index import ShardedFolder
from aptm.retrieval.reference import original_procedure_scores, per_image_attribute_scores
from aptm.training.arguments import RECIPES_DIR, load_recipe
from configuration_aptm import APTMConfig
from datasets_scripts import load_aptm_dataset, procedural
from retrieval_aptm import fuse_scores


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def make_inputs(num_images, num_queries, seed=0):
    rng = np.random.default_rng(seed)
    identities = [procedural.sample_identity(rng) for _ in range(max(1, num_images // 2))]
    images, captions = [], []
    for index in range(num_images):
        identity = identities[index % len(identities)]
        image, _ = procedural.render(identity, rng)
        images.append(image)
        captions.append(procedural.captions(identity, rng)[0])
    return images, [captions[i % num_images] for i in range(num_queries)]


def linear_gflops(rows, in_features, out_features, dtype=torch.float32, repeats=10):
    """Sustained rate of a linear layer's matrix product at this shape and dtype: the mean over `repeats` products
    in a row after a warm-up (a single best product runs faster than a long computation can), GFLOP/s."""
    inputs, weight = torch.randn(rows, in_features, dtype=dtype), torch.randn(out_features, in_features, dtype=dtype)
    torch.nn.functional.linear(inputs, weight)
    _, seconds = timed(lambda: [torch.nn.functional.linear(inputs, weight) for _ in range(repeats)])
    return 2 * rows * in_features * out_features * repeats / seconds / 1e9


@torch.no_grad()
def matmul_shapes(vision_model: torch.nn.Module, pixel_values: torch.Tensor) -> tuple[Counter, Counter]:
    """The matrix products of one forward of an image encoder on `pixel_values`, counted by shape with forward hooks:
    every linear layer's `(rows, in_features, out_features)` and every window attention's `(batch x windows x heads,
    tokens, head_dim, tokens)` (query x key, then weights x value), read from the `[B, windows, tokens, C]` windows it
    is called on."""
    linears, attentions = Counter(), Counter()

    def count_linear(layer, args, _):
        linears.update([(args[0].numel() // args[0].shape[-1], layer.in_features, layer.out_features)])

    def count_attention(layer, args):
        batch, windows, tokens, channels = args[0].shape
        attentions.update([(batch * windows * layer.num_heads, tokens, channels // layer.num_heads, tokens)])

    hooks = [layer.register_forward_hook(count_linear) for layer in vision_model.modules()
             if isinstance(layer, torch.nn.Linear)]
    hooks += [layer.register_forward_pre_hook(count_attention) for layer in vision_model.modules()
              if isinstance(layer, modeling_aptm.APTMWindowAttention)]
    try:
        vision_model(pixel_values)
    finally:
        for hook in hooks:
            hook.remove()
    return linears, attentions


def matmul_seconds(shapes, dtype=torch.float32):
    """Time the matrix products `shapes` (from `matmul_shapes`) take alone in `dtype`, each shape timed on this
    machine now: the ceiling of a module whose other work (normalisation, activations, copies) cost nothing."""
    linears, attentions = shapes
    seconds = sum(count * 2 * rows * inner * outer / linear_gflops(rows, inner, outer, dtype) / 1e9
                  for (rows, inner, outer), count in linears.items())
    for (batch, length, head_dim, keys), count in attentions.items():
        query = torch.randn(batch, length, head_dim, dtype=dtype)
        key, value = torch.randn(batch, keys, head_dim, dtype=dtype), torch.randn(batch, keys, head_dim, dtype=dtype)
        products = lambda: torch.bmm(torch.bmm(query, key.transpose(1, 2)), value)  # noqa: E731
        products()
        seconds += count * timed(lambda: [products() for _ in range(3)])[1] / 3
    return seconds


def rerank_flops(config, text_length, k, queries, shared=False):
    """FLOPs (2 x multiply-adds) of the fusion encoder and ITM head re-ranking `queries x k` pairs of mean text length
    `text_length` (image keys/values excluded: computed once per image). `shared=False`: every layer over every
    token of every pair, as the original procedure; `shared=True`: the engine's work, with the first layer's
    self-attention once per text and only [CLS] in the last layer (`APTMFusionModel.first_token_states`)."""
    cross = config.cross_config
    hidden, inter, tokens = cross.hidden_size, cross.intermediate_size, config.vision_config.num_patches + 1

    def self_attention(queried, length):
        return 2 * length * hidden**2 + 2 * queried * hidden**2 + 2 * queried * length * hidden

    def rest(queried):  # cross-attention (query and output projections, scores, weighted values), feed-forward
        return 2 * queried * hidden**2 + 2 * queried * tokens * hidden + 2 * queried * hidden * inter

    layers = cross.num_hidden_layers
    head = hidden * 2 * hidden + 2 * hidden * 2
    if not shared:
        return 2 * queries * k * (layers * (self_attention(text_length, text_length) + rest(text_length)) + head)
    first = 1 if layers == 1 else text_length
    per_text = self_attention(first, text_length)
    per_pair = rest(first) + head + (layers - 2) * (self_attention(text_length, text_length) + rest(text_length))
    if layers > 1:
        per_pair += self_attention(1, text_length) + rest(1)
    return 2 * queries * (per_text + k * per_pair)


@dataclass
class Agreement:
    """How the rankings of a score matrix compare with a reference's: queries ranked identically, queries whose
    rankings differ only by swapping images whose reference scores are within `tolerance` (near-ties), queries with a
    larger swap, the largest such reference-score gap, and the largest score difference."""

    identical: int
    near_ties: int
    beyond: int
    largest_swap: float
    largest_difference: float
    tolerance: float

    @classmethod
    def of(cls, scores, reference, tolerance):
        order = scores.argsort(dim=1, descending=True, stable=True)
        in_order = reference.gather(1, order)  # reference scores in the order `scores` ranks
        gaps = (in_order[:, 1:] - in_order.cummin(dim=1).values[:, :-1]).clamp(min=0).max(dim=1).values
        return cls(int((gaps == 0).sum()), int(((gaps > 0) & (gaps <= tolerance)).sum()), int((gaps > tolerance).sum()),
                   gaps.max().item(), (scores - reference).abs().max().item(), tolerance)

    def __str__(self):
        return (f"{self.identical} queries ranked identically, {self.near_ties} differ only by near-tie swaps "
                f"(reference scores within {self.tolerance:g}), {self.beyond} beyond; largest swap gap "
                f"{self.largest_swap:.2e}, largest |score difference| {self.largest_difference:.2e}")


def per_query_ms(function, queries):
    """Mean latency (ms) of `function` called on one query at a time."""
    function(queries[:1])  # warm-up: thread pools, the gallery's cached keys/values
    _, seconds = timed(lambda: [function([query]) for query in queries])
    return 1000 * seconds / len(queries)


def cpu_line(device=torch.device("cpu")):
    """The CPU's low-precision features (`retrieval_aptm.cpu_features`), torch's vector capability and the low
    precision exact-fast re-ranks with here."""
    features = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in cpu_features().items())
    low = default_low_precision(device)
    return (f"CPU: {features}; torch {torch.backends.cpu.get_cpu_capability()}; exact-fast re-ranks in {low} here"
            + ("" if low == "bf16" else " (no bfloat16 instructions: bf16 is emulated)"))


def top10_identical(scores, reference):
    """Share of the rows of two score matrices (or of two `FusedScores`) whose top 10 are the same images in the
    same order (ties broken by index, as the metrics do)."""
    def top10(matrix):
        return matrix.argsort(dim=1, descending=True, stable=True)[:, :10]

    return (top10(scores) == top10(reference)).all(dim=1).float().mean().item()


def configuration_table(name, config, num_images, num_queries, k, latency_k=16, tolerance=1e-5):
    """Benchmark one configuration side by side in one run: the original procedure and the engine in each precision
    (`PRECISIONS`: fp32, bf16, int8, exact-fast) on the same weights, gallery and queries; print the table, the
    rankings' agreement with the original procedure (identical except near-tie swaps within `tolerance`, else an
    error for fp32), exact-fast's top-10 agreement with fp32 and the share it re-scored in fp32, the re-rank FLOP
    floor at the faster of the matmul rates measured before and after the evaluations, and the time per stage of the
    fp32 and int8 engines. The encoders run in fp32 except under bf16: int8 and exact-fast share fp32's gallery."""
    torch.manual_seed(0)
    model = aptm.APTMModel(config).eval()
    processor = aptm.build_processor()
    images, queries = make_inputs(num_images, num_queries)
    k, latency_k = min(k, num_images), min(latency_k, num_images)

    def engine_for(precision):
        return RetrievalEngine(model, processor, k=k, batch_size=16, query_batch_size=8, progress=False,
                               precision=precision)

    pixel_values = processor.image_processor(images[:16])["pixel_values"]
    shapes = matmul_shapes(model.vision_model, pixel_values)
    rows, indices, scores, seconds, engines = {}, {}, {}, {}, {}
    for precision in PRECISIONS:
        engine = engine_for(precision)
        if precision in ("fp32", "bf16"):
            engine.encode_images(pixel_values[:2])  # warm-up
            _, encoding = timed(lambda: engine.encode_images(pixel_values))
            ceiling = matmul_seconds(shapes, engine.autocast or torch.float32)
            rows.setdefault("image encoder (images/s, batches of 16)", {})[precision] = f"{16 / encoding:.1f}"
            rows.setdefault("its matmul ceiling (images/s; share reached)", {})[precision] = (
                f"{16 / ceiling:.1f} ({100 * ceiling / encoding:.0f}%)")
            indices[precision], gallery_seconds = timed(lambda: engine.encode_gallery(images))
            rows.setdefault("gallery encoding with preprocessing (images/s)", {})[precision] = (
                f"{num_images / gallery_seconds:.1f}")
        index = indices["bf16" if precision == "bf16" else "fp32"]
        rows.setdefault("query latency, dual encoder (ms)", {})[precision] = (
            f"{per_query_ms(lambda q: engine.search(q, index, top=10, fusion='cosine'), queries[:8]):.0f}")
        engine.k = latency_k
        rows.setdefault(f"query latency, re-rank top {latency_k}, cached gallery (ms)", {})[precision] = (
            f"{per_query_ms(lambda q: engine.search(q, index, top=10), queries[:8]):.0f}")
    index = indices["fp32"]
    encoded = processor(text=queries)
    length = encoded["attention_mask"].sum(1).float().mean().item()
    cross = config.cross_config
    fusion_rate = lambda: linear_gflops(8 * k * round(length), cross.hidden_size, cross.intermediate_size)  # noqa: E731
    rates = [fusion_rate()]
    for precision in PRECISIONS:  # fresh engines: the evaluation pays for the gallery's keys/values
        engines[precision] = engine_for(precision)
        scores[precision], seconds[precision] = timed(lambda: engines[precision].score_matrix(queries, index))
    original, seconds["original"] = timed(lambda: original_procedure_scores(
        model, encoded["input_ids"], encoded["attention_mask"], index.image_embeds, index.image_features, k))
    evaluation = f"full evaluation, {num_queries} queries x {num_images} images, k={k} (s)"
    rows[evaluation] = {key: f"{value:.2f}" for key, value in seconds.items()}
    ratios = {"original / fp32": ("original", "fp32"), "fp32 / bf16": ("fp32", "bf16"), "fp32 / int8": ("fp32", "int8"),
              "original / exact-fast": ("original", "exact-fast")}
    rows[evaluation].update({column: f"{seconds[slow] / seconds[fast]:.2f}x"
                             for column, (slow, fast) in ratios.items()})
    stats = engines["exact-fast"].exact_fast_stats
    rows["exact-fast: logits re-scored in fp32"] = {"exact-fast": f"{100 * stats.rescored_share:.1f}%"}
    engine = engine_for("fp32")
    stages = {"text encoding": timed(lambda: engine.encode_texts(queries))[1],
              "gallery keys/values": timed(lambda: engine._cross_key_values(index, torch.arange(len(index))))[1]}
    rates.append(fusion_rate())
    rate = max(rates)  # the machine's speed drifts: the faster of the rates measured before and after the evaluations
    floor = rerank_flops(config, length, k, num_queries) / 1e9 / rate
    engine_floor = rerank_flops(config, length, k, num_queries, shared=True) / 1e9 / rate
    columns = (*PRECISIONS, "original", *ratios)
    print(f"\n## {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{torch.get_num_threads()} threads, {num_queries} queries x {num_images} images")
    print(cpu_line())
    print(f"| {'measure':<62} | " + " | ".join(f"{column:>21}" for column in columns) + " |")
    print(f"|{'-' * 64}|" + "|".join("-" * 23 for _ in columns) + "|")
    for measure, cells in rows.items():
        print(f"| {measure:<62} | " + " | ".join(f"{cells.get(column, ''):>21}" for column in columns) + " |")
    print(f"re-rank FLOP floor: {floor:.2f} s for the original procedure's work at mean text length {length:.1f} "
          f"and {rate:.0f} GFLOP/s (fp32 matmul at the fusion feed-forward's shape, the faster of "
          f"{rates[0]:.0f} and {rates[1]:.0f} measured before and after the evaluations): the fp32 engine's "
          f"full evaluation takes {seconds['fp32'] / floor:.2f}x that floor; the engine's own work (first "
          f"self-attention once per text, last layer [CLS] only) has a floor of {engine_floor:.2f} s "
          f"({seconds['fp32'] / engine_floor:.2f}x)")
    for precision in ("fp32", "int8"):
        rest = {**stages, "cosine, top-k, re-ranking and fusion": seconds[precision] - sum(stages.values())}
        print(f"{precision} engine time per stage: " + ", ".join(
            f"{stage} {value:.2f} s ({100 * value / seconds[precision]:.0f}%)" for stage, value in rest.items()))
    agreements = {precision: Agreement.of(scores[precision], original, tolerance) for precision in PRECISIONS}
    for precision, agreement in agreements.items():
        print(f"{precision} engine vs the original procedure: {agreement}")
    identical = {precision: top10_identical(scores[precision], scores["fp32"]) for precision in ("exact-fast", "int8")}
    print(f"exact-fast vs fp32: top 10 identical for {100 * identical['exact-fast']:.1f}% of the queries (int8 "
          f"alone: {100 * identical['int8']:.1f}%); "
          f"{100 * stats.rescored_share:.1f}% of the {stats.pairs} logits re-scored in fp32, error bound "
          f"{stats.error_bound:.2e} (largest measured error {stats.largest_error:.2e})")
    rerank_seconds = seconds["fp32"] - sum(stages.values())
    needed = (seconds["original"] / 3 - seconds["int8"]) / rerank_seconds
    print(f"exact-fast costs about the int8 engine's time plus the re-scored share of the fp32 engine's re-ranking "
          f"({seconds['int8']:.2f} s + share x {rerank_seconds:.2f} s here): 3x the original procedure needs a share "
          + (f"of at most {100 * needed:.0f}%" if needed > 0 else "below 0%: out of reach, the int8 engine alone takes "
             "more than a third of the original's time")
          + " (this random-initialised model's near-constant logits make its own share unrepresentative: measure "
          "it on a trained checkpoint with --agreement)")
    if agreements["fp32"].beyond:
        raise SystemExit(f"the fp32 engine's rankings differ from the original procedure's beyond near-ties: "
                         f"{agreements['fp32']}")
    return seconds


def precision_agreement(checkpoint, data_dir, k=128, precisions=PRECISIONS, num_queries=None,
                        recipe=RECIPES_DIR / "tiny_procedural.json"):
    """The engine in each precision (`PRECISIONS`) against fp32 on a trained checkpoint and the test split of the
    procedural dataset of `recipe` in `data_dir` (the quickstart's: `outputs/quickstart/checkpoint`,
    `outputs/quickstart/data`), with the original procedure's time on the same gallery: R@1 and mAP of each, the
    share of queries whose top 10 are identical in order to fp32's, exact-fast's share re-scored in fp32, and the
    time of each (gallery encoding and evaluation; the original: its scores from the fp32 gallery, the metrics
    excluded). `precisions` (fp32 always among them) and the first `num_queries` queries (default all) shorten it."""
    model, processor = load_checkpoint(checkpoint)
    data = load_aptm_dataset("procedural", data_dir=data_dir, **load_recipe(recipe)["dataset_options"])
    gallery, queries = data["test_gallery"], data["test_queries"]
    if num_queries is not None:
        queries = queries.select(range(min(num_queries, len(queries))))
    texts, k = list(queries["caption"]), min(k, len(gallery))
    precisions = ("fp32", *(precision for precision in precisions if precision != "fp32"))
    warm_up = RetrievalEngine(model, processor, k=k, progress=False)  # thread pools, the images' first decoding
    warm_up.score_matrix(texts[:8], warm_up.encode_gallery(gallery))
    results, engines = {}, {}
    for precision in precisions:
        engines[precision] = engine = RetrievalEngine(model, processor, k=k, precision=precision, progress=False)

        def evaluated():
            index = engine.encode_gallery(gallery, person_ids=gallery["person_id"])
            return index, *engine.evaluate(texts, queries["person_id"], index)

        (index, metrics, scores), seconds = timed(evaluated)
        results[precision] = metrics, scores.matrix(), seconds
        if precision == "fp32":
            encoded, gallery_seconds = timed(lambda: engine.encode_gallery(gallery))
            tokens = processor(text=texts)
            _, original_seconds = timed(lambda: original_procedure_scores(
                model, tokens["input_ids"], tokens["attention_mask"], encoded.image_embeds, encoded.image_features, k))
            original_seconds += gallery_seconds
    print(f"\n## precisions vs fp32 on {checkpoint}: {len(queries)} queries x {len(gallery)} images, k={k}, "
          f"{torch.get_num_threads()} threads")
    print(cpu_line())
    print(f"| {'measure':<42} | " + " | ".join(f"{precision:>10}" for precision in precisions) + " |")
    print(f"|{'-' * 44}|" + "|".join("-" * 12 for _ in precisions) + "|")
    for name in ("R@1", "mAP"):
        print(f"| {name:<42} | " + " | ".join(f"{results[p][0][name]:>10.2f}" for p in precisions) + " |")
    print(f"| {'top 10 identical to fp32 (% of queries)':<42} | " + " | ".join(
        f"{100 * top10_identical(results[p][1], results['fp32'][1]):>10.1f}" for p in precisions) + " |")
    print(f"| {'encoding + evaluation (s)':<42} | " + " | ".join(f"{results[p][2]:>10.1f}" for p in precisions)
          + " |")
    print(f"| {f'original procedure ({original_seconds:.1f} s) / this':<42} | " + " | ".join(
        f"{original_seconds / results[p][2]:>9.2f}x" for p in precisions) + " |")
    if "exact-fast" in engines:
        stats = engines["exact-fast"].exact_fast_stats
        print(f"exact-fast: {100 * stats.rescored_share:.1f}% of the {stats.pairs} logits re-scored in fp32, error "
              f"bound {stats.error_bound:.2e} (largest measured error {stats.largest_error:.2e})")
    return {p: top10_identical(results[p][1], results["fp32"][1]) for p in precisions}


def torch_stages(model):
    """The three ONNX stages (`aptm.export.ONNX_STAGES`) run by torch: file name -> function of numpy arrays giving
    a tuple of numpy arrays, as `onnx_stages`."""
    def runner(module):
        @torch.no_grad()
        def run(*arrays):
            outputs = module(*(torch.from_numpy(array) for array in arrays))
            return tuple(output.numpy() for output in (outputs if isinstance(outputs, tuple) else (outputs,)))
        return run
    return {name: runner(stage(model).eval()) for name, (stage, _, _) in ONNX_STAGES.items()}


def onnx_stages(folder, int8=False, threads=None):
    """The three ONNX stages of `folder` (fp32, or with `int8` their `_int8` variants) in onnxruntime sessions of
    `threads` intra-op threads (default: torch's): file name -> function of numpy arrays giving a tuple of them."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    stages = {}
    for name, (_, inputs, _) in ONNX_STAGES.items():
        session = onnxruntime.InferenceSession(str(Path(folder) / (int8_name(name) if int8 else name)), options,
                                               providers=["CPUExecutionProvider"])
        stages[name] = lambda *arrays, session=session, inputs=inputs: tuple(session.run(None, dict(zip(inputs,
                                                                                                        arrays))))
    return stages


def staged_ranking(stages, pixel_values, token_batches, k, batch_size=32, query_batch_size=8):
    """The engine's procedure through the three stages `stages` (`torch_stages` or `onnx_stages`): encode the images
    `batch_size` at a time, the texts (`token_batches`, `(input_ids, attention_mask)` numpy pairs), the cosine top-k,
    and ITM logits of each query's k candidates, `query_batch_size` queries (their pairs) per fusion call, text
    trimmed to the group's longest. Returns the cosine `[Q, G]`, top-k `[Q, k]` and ITM logits `[Q, k]` (torch) and
    the seconds of each of the three encodings."""
    # warm-up: thread pools, first-call allocations
    stages["image_encoder.onnx"](pixel_values[:2])
    stages["text_encoder.onnx"](*(array[:2] for array in token_batches[0]))
    start = time.perf_counter()
    image_outputs = [stages["image_encoder.onnx"](pixel_values[i : i + batch_size])
                     for i in range(0, len(pixel_values), batch_size)]
    image_seconds = time.perf_counter() - start
    image_features = np.concatenate([features for features, _ in image_outputs])
    image_embeds = np.concatenate([embeds for _, embeds in image_outputs])
    start = time.perf_counter()
    text_outputs = [stages["text_encoder.onnx"](ids, mask) for ids, mask in token_batches]
    text_seconds = time.perf_counter() - start
    cosine = torch.from_numpy(np.concatenate([features for features, _ in text_outputs]) @ image_features.T)
    top = cosine.topk(k, dim=1).indices
    itm, rerank_seconds, row = torch.empty(top.shape), 0.0, 0
    for (_, text_embeds), (_, mask) in zip(text_outputs, token_batches):
        for first in range(0, len(mask), query_batch_size):
            rows = slice(row + first, row + min(first + query_batch_size, len(mask)))
            group_mask = mask[first : first + query_batch_size]
            length = int(group_mask.sum(1).max())
            pairs = (np.repeat(text_embeds[first : first + query_batch_size, :length], k, axis=0),
                     np.repeat(group_mask[:, :length], k, axis=0), image_embeds[top[rows].flatten().numpy()])
            start = time.perf_counter()
            logits = stages["fusion_itm.onnx"](*pairs)[0]
            rerank_seconds += time.perf_counter() - start
            itm[rows] = torch.from_numpy(logits[:, 1]).view(-1, k)
        row += len(mask)
    return cosine, top, itm, (image_seconds, text_seconds, rerank_seconds)


def onnx_agreement(checkpoint, data_dir, onnx_folder=None, recipe=RECIPES_DIR / "tiny_procedural.json",
                   batch_size=32):
    """torch fp32 against onnxruntime fp32 and int8 (the `_int8` files of `export_onnx`) on a trained checkpoint and
    the test split of the procedural dataset of `recipe` in `data_dir` (the quickstart's), all through the same
    staged procedure (`staged_ranking`: the recipe's re-ranking k and fusion) on the same preprocessed pixels and
    tokens, one after the other in this run: R@1 and mAP dual encoder and re-ranked, the share of queries whose top
    10 is identical to torch fp32's (in order, and as a set), and the throughput of each stage. `onnx_folder` defaults to the
    checkpoint's `onnx/`. The torch engine's own evaluation is printed beside them as the reference."""
    model, processor = load_checkpoint(checkpoint, device="cpu")
    onnx_folder = Path(onnx_folder or Path(checkpoint) / "onnx")
    settings = load_recipe(recipe)
    k, fusion = settings["rerank_k"], settings["fusion"]
    data = load_aptm_dataset("procedural", data_dir=data_dir, **settings["dataset_options"])
    gallery, queries = data["test_gallery"], data["test_queries"]
    texts = [clean_caption(caption, "procedural") for caption in queries["caption"]]
    query_ids, gallery_ids = np.array(queries["person_id"]), np.array(gallery["person_id"])
    engine = RetrievalEngine(model, processor, k=k, fusion=fusion, progress=False)
    engine_metrics, _ = engine.evaluate(texts, query_ids, engine.encode_gallery(gallery, person_ids=gallery_ids))
    pixel_values = processor.image_processor(list(gallery["image"]))["pixel_values"].numpy()
    token_batches = []
    for start in range(0, len(texts), batch_size):
        tokens = processor.tokenize(texts[start : start + batch_size], padding="longest")
        token_batches.append((tokens["input_ids"].numpy(), tokens["attention_mask"].numpy()))
    backends = {"torch fp32": lambda: torch_stages(model), "onnxruntime fp32": lambda: onnx_stages(onnx_folder),
                "onnxruntime int8": lambda: onnx_stages(onnx_folder, int8=True)}
    results = {}
    for name, stages in backends.items():
        cosine, top, itm, seconds = staged_ranking(stages(), pixel_values, token_batches, k, batch_size)
        fused = fuse_scores(cosine, top, itm, fusion, model.config.itm_cosine_weight)
        results[name] = {"dual": (retrieval_metrics(cosine, query_ids, gallery_ids),
                                  cosine.argsort(dim=1, descending=True, stable=True)[:, :10]),
                         "re-ranked": (retrieval_metrics(fused, query_ids, gallery_ids),
                                       fused.argsort(dim=1, descending=True, stable=True)[:, :10]),
                         "rates": (len(pixel_values) / seconds[0], len(texts) / seconds[1], top.numel() / seconds[2])}
    print(f"\n## torch fp32 vs onnxruntime fp32 / int8 on {checkpoint}: {len(texts)} queries x {len(gallery)} "
          f"images, re-rank k={k}, {torch.get_num_threads()} threads, onnxruntime {onnx_folder}")
    print(f"torch engine's own evaluation: R@1 {engine_metrics['R@1']:.2f}, mAP {engine_metrics['mAP']:.2f}")
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    reference = results["torch fp32"]
    for ranking in ("dual", "re-ranked"):
        for metric in ("R@1", "mAP"):
            print(f"| {metric} {ranking} | " + " | ".join(f"{result[ranking][0][metric]:.2f}"
                                                         for result in results.values()) + " |")
        for agreement, same in (("identical to torch fp32's (in order)", lambda top, reference: top == reference),
                                ("the same images as torch fp32's", lambda top, reference:
                                 top.sort(dim=1).values == reference.sort(dim=1).values)):
            shares = [same(result[ranking][1], reference[ranking][1]).all(dim=1).float().mean().item()
                      for result in results.values()]
            print(f"| top 10 {agreement}, {ranking} | " + " | ".join(f"{100 * share:.1f}%" for share in shares) + " |")
    for index, unit in enumerate(("images/s", "texts/s", "re-rank pairs/s")):
        print(f"| {unit} | " + " | ".join(f"{result['rates'][index]:.0f}" for result in results.values()) + " |")
    return results


def synthetic_captions(count, seed=0):
    """`count` captions of 8 words drawn from a few clothing words (for benchmarks whose cost depends on lengths)."""
    words = np.random.default_rng(seed).choice(["red", "blue", "jacket", "bag", "shoes", "walking", "woman", "man"],
                                               (count, 8))
    return [" ".join(row) for row in words]


@torch.no_grad()
def image_shapes(engine):
    """Shapes of one image's tokens `(1 + N, C)` and feature `(E,)` for the engine's model, for synthetic indices."""
    embeds, feature = engine.encode_images(torch.zeros(1, 3, *engine.model.config.vision_config.image_size))
    return embeds.shape[1:], feature.shape[1:]


def evaluation_memory_growth(streaming, num_queries, num_images, k=16):
    """Peak RSS growth (MB) of one evaluation of `num_queries` synthetic captions against a synthetic tiny-config index
    of `num_images`, through the whole score matrix or streamed; run it in a fresh process."""
    torch.manual_seed(0)
    config = APTMConfig.from_preset("aptm-tiny")
    model = aptm.APTMModel(config).eval()
    engine = RetrievalEngine(model, aptm.build_processor(), k=k, batch_size=256, progress=False)
    tokens, feature = image_shapes(engine)
    index = GalleryIndex(torch.nn.functional.normalize(torch.randn(num_images, *feature), dim=-1),
                         torch.randn(num_images, *tokens), torch.arange(num_images) // 2)
    texts, query_ids = synthetic_captions(num_queries), np.arange(num_queries) % (num_images // 2)
    engine.evaluate(texts[:64], query_ids[:64], index)  # warm-up: thread pools, the gallery's keys/values
    baseline = peak_rss_mb()
    if streaming:
        engine.evaluate(texts, query_ids, index)
    else:
        retrieval_metrics(engine.score_matrix(texts, index), query_ids, index.person_ids.numpy())
    return peak_rss_mb() - baseline


def memory_table(sizes):
    """Print the evaluation memory table for `(queries, gallery)` sizes, each path measured in its own process."""
    print(f"| {'queries x gallery':>17} | {'one fp32 matrix':>15} | {'whole matrix':>12} | {'streamed':>9} |")
    print(f"|{'-' * 19}|{'-' * 17}|{'-' * 14}|{'-' * 11}|")
    streamed = {}
    for num_queries, num_images in sizes:
        growth = []
        for streaming in (False, True):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
                growth.append(fresh.submit(evaluation_memory_growth, streaming, num_queries, num_images).result())
        matrix_mb = num_queries * num_images * 4 / 2**20
        print(f"| {f'{num_queries} x {num_images}':>17} | {matrix_mb:>12.0f} MB | {growth[0]:>9.0f} MB | "
              f"{growth[1]:>6.0f} MB |")
        streamed.setdefault(num_images, []).append((num_queries, growth[1]))
    for num_images, rows in streamed.items():  # what more queries add against the same gallery, streamed
        for (fewer, low), (more, high) in zip(sorted(rows), sorted(rows)[1:]):
            rows_mb = (more - fewer) * num_images * 4 / 2**20
            print(f"streamed, {more - fewer} more queries x {num_images} images: {high - low:+.0f} MB, "
                  f"{(high - low) / rows_mb:.2f}x their fp32 score rows ({rows_mb:.0f} MB)")


def resident_mb(mapped_name):
    """Resident memory of this process now (MB): all of it, and the pages of the memory-mapped files named
    `mapped_name` in it (which the kernel can drop)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    mapped_kb, in_file = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if not fields[0].endswith(":"):  # a mapping's header: address, permissions, offset, device, inode, path
            in_file = len(fields) > 5 and Path(fields[5]).name == mapped_name
        elif fields[0] == "Rss:" and in_file:
            mapped_kb += int(fields[1])
    return int(status["VmRSS"].split()[0]) / 1024, mapped_kb / 1024


def memory_mapped_index_table(num_images, shard_size=4096, num_queries=8, k=16):
    """Write a synthetic float16 index of `num_images` (random features and image tokens of the tiny configuration's
    shapes) shard by shard, load it memory-mapped and print its size on disk, the resident memory it adds once
    loaded and after `num_queries` searches, and the latency of one query with the dual encoder and with re-ranking
    the top `k` (keys/values of each query's candidates only: `kv_memory_limit=0`)."""
    torch.manual_seed(0)
    config = APTMConfig.from_preset("aptm-tiny")
    engine = RetrievalEngine(aptm.APTMModel(config).eval(), aptm.build_processor(), k=k, kv_memory_limit=0,
                             progress=False)
    tokens, feature = image_shapes(engine)
    texts = synthetic_captions(num_queries)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        shards = ShardedFolder.of_index(folder, torch.float16, person_ids=False)

        def write_shards():
            for start in range(0, num_images, shard_size):
                size = min(shard_size, num_images - start)
                features = torch.nn.functional.normalize(torch.randn(size, *feature), dim=-1)
                with shards.new_shard() as shard:
                    GalleryIndex(features, torch.randn(size, *tokens, dtype=torch.float16),
                                 paths=[f"{start + i}.jpg" for i in range(size)]).save(shard, torch.float16)

        _, seconds = timed(write_shards)
        disk_mb = sum(file.stat().st_size for file in Path(folder).rglob("index.safetensors")) / 2**20
        rows.append(("index written (synthetic shards, float16)", f"{disk_mb:.0f} MB in {seconds:.1f} s"))
        rows.append(("its image tokens in RAM as float32 would take",
                     f"{num_images * tokens.numel() * 4 / 2**20:.0f} MB"))
        baseline, _ = resident_mb("index.safetensors")
        index, seconds = timed(lambda: GalleryIndex.load(folder, mmap=True))
        loaded, loaded_mapped = resident_mb("index.safetensors")
        rows.append(("load, memory-mapped", f"{seconds:.2f} s, RSS +{loaded - baseline:.0f} MB "
                                            f"({loaded_mapped:.1f} MB of it index file pages)"))
        for fusion, name in (("cosine", "dual encoder"), ("aptm", f"re-rank k={k}")):
            engine.search(texts[:1], index, top=10, fusion=fusion)  # warm-up
            _, seconds = timed(lambda: [engine.search([text], index, top=10, fusion=fusion) for text in texts])
            rows.append((f"query latency, {name}", f"{1000 * seconds / num_queries:.1f} ms"))
        searched, searched_mapped = resident_mb("index.safetensors")
        rows.append((f"after {2 * num_queries + 2} queries", f"RSS +{searched - baseline:.0f} MB ("
                                                             f"{searched_mapped:.1f} MB index file pages), "
                                                             f"{index.image_embeds.rows_read} token rows read"))
    print(f"\n## memory-mapped index: {num_images} images, aptm-tiny, {torch.get_num_threads()} threads")
    print(f"| {'measure':<46} | {'value':<58} |")
    print(f"|{'-' * 48}|{'-' * 60}|")
    for measure, value in rows:
        print(f"| {measure:<46} | {value:<58} |")


def preparation_throughput(num_images, processes=(1, 2), views_per_identity=4):
    """Generate a procedural MALS-format set of about `num_images` training images (`gene_attrs/`, two caption records
    per image; untimed), then time its preparation, `load_aptm_dataset("mals")` (read and check the records, decode
    each image once, write the prepared files), with each `num_proc` of `processes` into a fresh cache, and print the
    images per second side by side."""
    identities = -(-num_images // views_per_identity) + 2  # one test and one validation identity, the rest train
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "mals"
        procedural.generate(data_dir, num_identities=identities, views_per_identity=views_per_identity, seed=0,
                            test_fraction=0, validation_fraction=0, progress=False, num_proc=max(processes))
        for num_proc in processes:
            cache = Path(folder) / f"cache-{num_proc}"
            data, seconds = timed(lambda: load_aptm_dataset("mals", data_dir=data_dir, cache_dir=cache,
                                                            num_proc=num_proc))
            rows.append((num_proc, len(set(data["train"]["image_path"])), data["train"].num_rows, seconds))
    print(f"\n## preparation of a procedural MALS-format set, {get_context().cpu_count()} CPU cores")
    print(f"| {'num_proc':>8} | {'images':>7} | {'records':>7} | {'seconds':>7} | {'images/s':>8} | {'speed-up':>8} |")
    print(f"|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 10}|")
    for num_proc, images, records, seconds in rows:
        print(f"| {num_proc:>8} | {images:>7} | {records:>7} | {seconds:>7.1f} | {images / seconds:>8.0f} | "
              f"{rows[0][3] / seconds:>7.2f}x |")


def attribute_throughput(configs, num_images, batch_size=32):
    """Print attribute recognition's ITM prompt scoring throughput (images/s) per configuration `(name, config)`:
    the per-image loop (`per_image_attribute_scores`: every prompt with one image at a time) against
    `AttributeRecognizer`'s fused batch (`batch_size` images with every prompt at once) on the same `num_images`
    preprocessed images, with the largest difference between their scores."""
    processor = aptm.build_processor()
    prompts = processor.encode_attribute_prompts()
    images, _ = make_inputs(num_images, 0)
    pixel_values = processor.image_processor(images)["pixel_values"]
    print(f"\n## attribute prompt scoring (ITM, {len(prompts['input_ids'])} prompts), {num_images} images, "
          f"{torch.get_num_threads()} threads")
    print(f"| {'configuration':<40} | {'per-image loop':>14} | {'fused batch':>11} | {'speed-up':>8} | "
          f"{'largest difference':>18} |")
    print(f"|{'-' * 42}|{'-' * 16}|{'-' * 13}|{'-' * 10}|{'-' * 20}|")
    for name, config in configs:
        torch.manual_seed(0)
        model = aptm.APTMModel(config).eval()
        recognizer = AttributeRecognizer(model, processor, batch_size=batch_size, progress=False)
        recognizer.prompt_scores(pixel_values[:2])  # warm-up: thread pools
        looped, loop_seconds = timed(lambda: per_image_attribute_scores(
            model, prompts["input_ids"], prompts["attention_mask"], pixel_values))
        fused, fused_seconds = timed(lambda: recognizer.prompt_scores(pixel_values))
        print(f"| {name:<40} | {num_images / loop_seconds:>10.1f} i/s | {num_images / fused_seconds:>7.1f} i/s | "
              f"{loop_seconds / fused_seconds:>7.2f}x | {(fused - looped).abs().max().item():>18.1e} |")


def footage_throughput(video, checkpoint, frame_step=10, workers=(1, 2)):
    """Index `video` with `checkpoint` (every `frame_step`-th frame through the HOG detector, tracks, 3 crops a track
    encoded) into a fresh index once per row: detection in the calling thread (`workers=1`, the sequential path), then
    in worker threads overlapping encoding, with OpenCV's own thread count as it is and at 1. Prints per row the
    seconds, sampled frames/s, people crops/s (detections), encoded crops/s, the speed against real time, the process's
    CPU seconds and those spent in detection (each call's thread CPU time: all of it where OpenCV runs 1 thread), and
    whether the index (tracks, crops, thumbnails, features) is the same as the sequential one. CPU seconds hardly
    depend on other jobs: on a busy machine, compare them, and re-run when it is quiet for the wall-clock columns."""
    import cv2

    from aptm.footage import FootageIndex, HOGPersonDetector

    class TimedHOG(HOGPersonDetector):
        """Keeps the thread CPU seconds of each call."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def __call__(self, image):
            start = time.thread_time()
            found = super().__call__(image)
            self.seconds.append(time.thread_time() - start)
            return found

    capture = cv2.VideoCapture(str(video))
    duration = capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    opencv_threads = cv2.getNumThreads()
    rows = [(count, opencv_threads) for count in workers] + [(max(workers), 1)]
    print(f"\n## footage indexing: {Path(video).name} ({duration:.1f} s), frame step {frame_step}, "
          f"{get_context().cpu_count()} CPU cores, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"| {'workers':>7} | {'cv2 threads':>11} | {'seconds':>7} | {'frames/s':>8} | {'people/s':>8} | "
          f"{'encoded/s':>9} | {'x real time':>11} | {'CPU s':>6} | {'detection CPU s':>15} | {'same index':>10} |")
    print(f"|{'-' * 9}|{'-' * 13}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 11}|{'-' * 13}|{'-' * 8}|{'-' * 17}|"
          f"{'-' * 12}|")
    with tempfile.TemporaryDirectory() as folder:
        reference = None
        for count, threads in rows:
            cv2.setNumThreads(threads)
            index, detector = FootageIndex(Path(folder) / f"workers{count}-cv2-{threads}", checkpoint), TimedHOG()
            cpu = time.process_time()
            report = index.add_sources([video], detector=detector, frame_step=frame_step, workers=count,
                                       progress=False)
            cpu = time.process_time() - cpu
            contents = [(shard / "crops.json").read_text() for shard in sorted((index.folder / "shards").iterdir())]
            built = (contents, index.gallery.image_features, index.gallery.image_embeds)
            reference = reference or built
            same = built[0] == reference[0] and all(torch.equal(a, b) for a, b in zip(built[1:], reference[1:]))
            seconds = report.seconds
            print(f"| {count:>7} | {threads:>11} | {seconds:>7.1f} | {report.pictures / seconds:>8.2f} | "
                  f"{report.detections / seconds:>8.2f} | {report.crops / seconds:>9.2f} | "
                  f"{duration / seconds:>10.2f}x | {cpu:>6.1f} | {sum(detector.seconds):>15.1f} | "
                  f"{'yes' if same else 'NO':>10} |")
        cv2.setNumThreads(opencv_threads)
    print(f"{report.pictures} sampled frames, {report.detections} people crops, {report.tracks} tracks "
          f"({report.static_tracks} static), {report.crops} crops encoded; load average now "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="tiny,base")
    parser.add_argument("--gallery", type=int, default=200, help="gallery size for the tiny configuration")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=128, help="candidates re-ranked in the tiny configuration")
    parser.add_argument("--base-gallery", type=int, default=48, help="gallery size for the paper-size configuration")
    parser.add_argument("--base-queries", type=int, default=16)
    parser.add_argument("--base-k", type=int, default=48)
    parser.add_argument("--agreement", nargs=2, metavar=("CHECKPOINT", "DATA_DIR"),
                        help="measure only every precision against fp32 on a trained checkpoint and its procedural data's test "
                             "split (e.g. outputs/quickstart/checkpoint outputs/quickstart/data)")
    parser.add_argument("--agreement-k", type=int, default=128,
                        help="candidates re-ranked in the --agreement run (default: the paper's k_test, 128)")
    parser.add_argument("--agreement-precisions", default=",".join(PRECISIONS),
                        help="precisions the --agreement run compares with fp32, comma-separated")
    parser.add_argument("--agreement-queries", type=int, help="the --agreement run's first queries only")
    parser.add_argument("--onnx", nargs=2, metavar=("CHECKPOINT", "DATA_DIR"),
                        help="measure only torch fp32 against onnxruntime fp32 and int8 (the checkpoint's onnx/ folder "
                             "written by scripts/export_onnx.py) on a trained checkpoint and its procedural data's "
                             "test split")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="reference-score gap within which two images may swap ranks (near-ties)")
    parser.add_argument("--memory", help="measure only the evaluation memory table at these QUERIESxGALLERY sizes, "
                                         "comma-separated (e.g. 2000x1000,8000x4000,32000x16000)")
    parser.add_argument("--index", type=int, metavar="IMAGES",
                        help="measure only a memory-mapped synthetic index of this many images (e.g. 100000)")
    parser.add_argument("--attributes", type=int, metavar="IMAGES",
                        help="measure only attribute prompt scoring, per-image loop against the fused batch, on this "
                             "many images at the --configs sizes (e.g. 64)")
    parser.add_argument("--prep", type=int, metavar="IMAGES", help="measure only the preparation of a procedural "
                                                                   "MALS-format set of this many images (e.g. 20000)")
    parser.add_argument("--footage", nargs=2, metavar=("VIDEO", "CHECKPOINT"),
                        help="measure only footage indexing of VIDEO with CHECKPOINT, one frame at a time against "
                             "detection in worker threads (e.g. /usr/share/doc/opencv-doc/examples/data/vtest.avi "
                             "outputs/quickstart/checkpoint)")
    args = parser.parse_args(argv)
    if args.footage:
        footage_throughput(*args.footage)
        return
    if args.agreement:
        precision_agreement(*args.agreement, k=args.agreement_k, precisions=args.agreement_precisions.split(","),
                            num_queries=args.agreement_queries)
        return
    if args.onnx:
        onnx_agreement(*args.onnx)
        return
    if args.prep:
        preparation_throughput(args.prep)
        return
    if args.index:
        memory_mapped_index_table(args.index)
        return
    if args.memory:
        memory_table([tuple(int(n) for n in size.split("x")) for size in args.memory.split(",")])
        return
    presets = {"tiny": ("aptm-tiny", "aptm-tiny"), "base": ("aptm-base (paper size)", "aptm-base")}
    if args.attributes:
        unknown = [name for name in args.configs.split(",") if name not in presets]
        if unknown:
            parser.error(f"unknown configuration {unknown[0]!r}")
        attribute_throughput([(presets[name][0], APTMConfig.from_preset(presets[name][1]))
                              for name in args.configs.split(",")], args.attributes)
        return
    for name in args.configs.split(","):
        if name == "tiny":
            configuration_table("aptm-tiny", APTMConfig.from_preset("aptm-tiny"), args.gallery, args.queries, args.k,
                                tolerance=args.tolerance)
        elif name == "base":
            configuration_table("aptm-base (paper size, reduced gallery)", APTMConfig.from_preset("aptm-base"),
                                args.base_gallery, args.base_queries, args.base_k, tolerance=args.tolerance)
        else:
            parser.error(f"unknown configuration {name!r}")


if __name__ == "__main__":
    main()
