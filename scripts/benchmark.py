"""Benchmark the retrieval engine against a straightforward re-implementation of the original evaluation (one query
at a time, text padded to 56, top-k cosine candidates, image keys/values recomputed for every pair), on the same
weights and inputs, asserting identical rankings. Prints one table per configuration with the ratios, a profile of
the engine's time, and the FLOPs floor of the re-ranking.

    python scripts/benchmark.py                       # tiny and paper-size (reduced gallery) configurations
    python scripts/benchmark.py --configs tiny --gallery 400 --queries 200
    python scripts/benchmark.py --memory 2000x1000,8000x4000,32000x16000   # evaluation memory table only
    python scripts/benchmark.py --index 100000        # a memory-mapped synthetic index only
    python scripts/benchmark.py --prep 20000          # dataset preparation, num_proc 1 and 2, only

`--memory QUERIESxGALLERY,...` measures instead, side by side, the peak memory of evaluation (tiny configuration, a
synthetic gallery index, k = 16) through the whole score matrix (`retrieval_metrics` of `score_matrix`) and streamed
in query chunks (`RetrievalEngine.evaluate`), each in a fresh process, as growth of peak RSS above that process's
baseline once model, index and captions are built and 64 queries evaluated (the gallery's share: its cross-attention
keys/values), with the size of one full fp32 score matrix beside them.

`--index IMAGES` writes a synthetic float16 index of that many images (tiny configuration's shapes) shard by shard,
loads it memory-mapped and reports its size, the resident memory it adds (loaded, then after a few searches) and the
latency of one query, dual encoder and re-ranking the top 16 (`memory_mapped_index_table`).
"""

import argparse
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

import aptm
from aptm.metrics import retrieval_metrics
from aptm.retrieval import SENTINEL, GalleryIndex, RetrievalEngine, fuse_scores, min_max
from aptm.retrieval.index import ShardedFolder
from configuration_aptm import APTMConfig
from datasets_scripts import load_aptm_dataset, procedural


@torch.no_grad()
def original_procedure_scores(model, input_ids, attention_mask, image_embeds, image_features, k, cosine_weight=0.002):
    """The original evaluator, one query at a time (reference for tests and benchmarks): text padded to its full
    length, top-k images by cosine, ITM logit[1] of each (text, candidate) pair with image keys/values recomputed for
    every pair, then the single-process `"aptm"` fusion."""
    text_embeds = model.text_model(input_ids, attention_mask).last_hidden_state
    text_features = model.text_features_from_embeds(text_embeds)
    cosine = text_features @ image_features.t()
    scores = torch.full_like(cosine, SENTINEL)
    for row in range(len(cosine)):
        values, top = cosine[row].topk(k)
        logits = model.itm_logits(text_embeds[row : row + 1].repeat(k, 1, 1), attention_mask[row : row + 1].repeat(k, 1),
                                  image_embeds[top])
        scores[row, top] = logits[:, 1]
    scores = torch.where(scores == SENTINEL, scores.min(dim=1, keepdim=True).values, scores)
    return min_max(scores) + cosine_weight * min_max(cosine)


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


def matmul_gflops(size=1024, repeats=5):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    _, seconds = timed(lambda: [a @ b for _ in range(repeats)])
    return 2 * size**3 * repeats / seconds / 1e9


def rerank_flops(config, text_length, k, queries):
    """Multiply-adds x 2 of the fusion encoder + ITM head for `queries x k` pairs (image keys/values excluded: the
    engine computes them once per image)."""
    cross = config.cross_config
    hidden, inter, tokens = cross.hidden_size, cross.intermediate_size, config.vision_config.num_patches + 1
    per_layer = (4 * text_length * hidden**2 + 2 * text_length**2 * hidden  # self-attention
                 + 2 * text_length * hidden**2 + 2 * text_length * tokens * hidden  # cross-attention q, out, scores
                 + 2 * text_length * hidden * inter)  # feed-forward
    head = hidden * 2 * hidden + 2 * hidden * 2
    return 2 * queries * k * (cross.num_hidden_layers * per_layer + head)


def run(name, config, num_images, num_queries, ks, threads):
    torch.manual_seed(0)
    model = aptm.APTMModel(config).eval()
    processor = aptm.build_processor()
    images, queries = make_inputs(num_images, num_queries)
    engine = RetrievalEngine(model, processor, batch_size=16, query_batch_size=8, progress=False)
    rows = []
    index, seconds = timed(lambda: engine.encode_gallery(images))
    rows.append(("gallery encoding", f"{num_images / seconds:.1f} images/s", "", ""))
    _, seconds = timed(lambda: engine.search(queries[:8], index, top=10, fusion="cosine"))
    rows.append(("query latency, dual encoder", f"{1000 * seconds / 8:.1f} ms", "", ""))
    for k in ks:
        engine.k = min(k, num_images)
        _, seconds = timed(lambda: engine.search(queries[:8], index, top=10))
        rows.append((f"query latency, re-rank k={engine.k}", f"{1000 * seconds / 8:.1f} ms", "", ""))
    k = min(max(ks), num_images)
    engine.k = k
    timings = {}
    cosine, topk, itm = None, None, None

    def profiled():
        nonlocal cosine, topk, itm
        start = time.perf_counter()
        encoded = engine.encode_texts(queries)
        timings["text encoding"] = time.perf_counter() - start
        cosine, topk, itm = engine.rank(queries, index, k=k)
        timings["cosine + re-rank"] = time.perf_counter() - start - timings["text encoding"]
        return encoded

    _, engine_seconds = timed(lambda: (profiled(), fuse_scores(cosine, topk, itm, "aptm", 0.002)))
    engine_scores = fuse_scores(cosine, topk, itm, "aptm", 0.002)
    memory_engine = peak_rss_mb()
    encoded = processor(text=queries)
    with torch.no_grad():
        original, original_seconds = timed(lambda: original_procedure_scores(
            model, encoded["input_ids"], encoded["attention_mask"], index.image_embeds, index.image_features, k))
    memory_original = peak_rss_mb()
    same = torch.equal(engine_scores.argsort(dim=1, descending=True, stable=True),
                       original.argsort(dim=1, descending=True, stable=True))
    assert same, "the engine's rankings differ from the original procedure's"
    rows.append((f"full evaluation ({num_queries} queries x {num_images} images, k={k})",
                 f"{engine_seconds:.2f} s", f"{original_seconds:.2f} s", f"{original_seconds / engine_seconds:.2f}x"))
    rows.append(("peak process memory (RSS, cumulative)", f"{memory_engine:.0f} MB", f"{memory_original:.0f} MB", ""))
    lengths = encoded["attention_mask"].sum(1).float().mean().item()
    flops = rerank_flops(config, lengths, k, num_queries)
    peak = matmul_gflops()
    print(f"\n## {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {threads} threads")
    print(f"| {'measure':<58} | {'engine':>14} | {'original':>10} | {'ratio':>7} |")
    print(f"|{'-' * 60}|{'-' * 16}|{'-' * 12}|{'-' * 9}|")
    for measure, ours, theirs, ratio in rows:
        print(f"| {measure:<58} | {ours:>14} | {theirs:>10} | {ratio:>7} |")
    print(f"rankings identical: {same}; max |score difference| {(engine_scores - original).abs().max():.2e}")
    print("engine time: " + ", ".join(f"{key} {value:.2f} s" for key, value in timings.items()))
    print(f"re-rank floor: {flops / 1e9:.2f} GFLOP at mean text length {lengths:.1f} -> {flops / 1e9 / peak:.2f} s at "
          f"this machine's {peak:.0f} GFLOP/s matmul peak")


def evaluation_memory_growth(streaming, num_queries, num_images, k=16):
    """Peak RSS growth (MB) of one evaluation of `num_queries` synthetic captions against a synthetic tiny-config index
    of `num_images`, through the whole score matrix or streamed; run it in a fresh process."""
    torch.manual_seed(0)
    config = APTMConfig.from_preset("aptm-tiny")
    model = aptm.APTMModel(config).eval()
    engine = RetrievalEngine(model, aptm.build_processor(), k=k, batch_size=256, query_batch_size=64, progress=False)
    with torch.no_grad():  # the shapes of one image's tokens and feature
        embeds, feature = engine.encode_images(torch.zeros(1, 3, *config.vision_config.image_size))
    index = GalleryIndex(torch.nn.functional.normalize(torch.randn(num_images, feature.shape[1]), dim=-1),
                         torch.randn(num_images, *embeds.shape[1:]), torch.arange(num_images) // 2)
    words = np.random.default_rng(0).choice(["red", "blue", "jacket", "bag", "shoes", "walking", "woman", "man"],
                                            (num_queries, 8))
    texts, query_ids = [" ".join(row) for row in words], np.arange(num_queries) % (num_images // 2)
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
    for num_queries, num_images in sizes:
        growth = []
        for streaming in (False, True):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
                growth.append(fresh.submit(evaluation_memory_growth, streaming, num_queries, num_images).result())
        matrix_mb = num_queries * num_images * 4 / 2**20
        print(f"| {f'{num_queries} x {num_images}':>17} | {matrix_mb:>12.0f} MB | {growth[0]:>9.0f} MB | "
              f"{growth[1]:>6.0f} MB |")


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
    with torch.no_grad():  # the shapes of one image's tokens and feature
        embeds, feature = engine.encode_images(torch.zeros(1, 3, *config.vision_config.image_size))
    words = np.random.default_rng(0).choice(["red", "blue", "jacket", "bag", "shoes", "walking", "woman", "man"],
                                            (num_queries, 8))
    texts = [" ".join(row) for row in words]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        shards = ShardedFolder.of_index(folder, torch.float16, person_ids=False)

        def write_shards():
            for start in range(0, num_images, shard_size):
                size = min(shard_size, num_images - start)
                features = torch.nn.functional.normalize(torch.randn(size, feature.shape[1]), dim=-1)
                with shards.new_shard() as shard:
                    GalleryIndex(features, torch.randn(size, *embeds.shape[1:], dtype=torch.float16),
                                 paths=[f"{start + i}.jpg" for i in range(size)]).save(shard, torch.float16)

        _, seconds = timed(write_shards)
        disk_mb = sum(file.stat().st_size for file in Path(folder).rglob("index.safetensors")) / 2**20
        rows.append(("index written (synthetic shards, float16)", f"{disk_mb:.0f} MB in {seconds:.1f} s"))
        rows.append(("its image tokens in RAM as float32 would take",
                     f"{num_images * embeds[0].numel() * 4 / 2**20:.0f} MB"))
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="tiny,base")
    parser.add_argument("--gallery", type=int, default=200, help="gallery size for the tiny configuration")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--base-gallery", type=int, default=48, help="gallery size for the paper-size configuration")
    parser.add_argument("--base-queries", type=int, default=16)
    parser.add_argument("--memory", help="measure only the evaluation memory table at these QUERIESxGALLERY sizes, "
                                         "comma-separated (e.g. 2000x1000,8000x4000,32000x16000)")
    parser.add_argument("--index", type=int, metavar="IMAGES",
                        help="measure only a memory-mapped synthetic index of this many images (e.g. 100000)")
    parser.add_argument("--prep", type=int, metavar="IMAGES", help="measure only the preparation of a procedural "
                                                                   "MALS-format set of this many images (e.g. 20000)")
    args = parser.parse_args(argv)
    if args.prep:
        preparation_throughput(args.prep)
        return
    if args.index:
        memory_mapped_index_table(args.index)
        return
    if args.memory:
        memory_table([tuple(int(n) for n in size.split("x")) for size in args.memory.split(",")])
        return
    threads = torch.get_num_threads()
    for name in args.configs.split(","):
        if name == "tiny":
            run("aptm-tiny", APTMConfig.from_preset("aptm-tiny"), args.gallery, args.queries, (16, 128), threads)
        elif name == "base":
            run("aptm-base (paper size, reduced gallery)", APTMConfig.from_preset("aptm-base"), args.base_gallery,
                args.base_queries, (16, 128), threads)
        else:
            parser.error(f"unknown configuration {name!r}")


if __name__ == "__main__":
    main()
