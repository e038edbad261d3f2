"""The benchmark runs end to end on a small gallery and checks the engine's rankings itself."""

import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

import aptm

from helpers.models import tiny_config
from helpers.paths import REPO, load_script


def test_benchmark_smoke():
    """The default path runs to the end on a small gallery: one table with the engine in every precision and the
    original procedure side by side, the CPU's features, the floor, the stages, the agreements (fp32: no swap beyond
    near-ties) and exact-fast's with fp32."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--configs", "tiny", "--gallery",
                             "10", "--queries", "6", "--k", "8"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for measure in ("image encoder (images/s", "its matmul ceiling", "gallery encoding", "query latency, dual encoder",
                    "query latency, re-rank top 10", "full evaluation, 6 queries x 10 images, k=8", "re-rank FLOP floor",
                    "fp32 engine time per stage", "bf16 engine vs the original procedure", "CPU: avx512_vnni",
                    "exact-fast engine vs the original procedure", "exact-fast: logits re-scored in fp32",
                    "exact-fast vs fp32: top 10 identical for 100.0% of the queries"):
        assert measure in result.stdout, measure
    agreement = next(line for line in result.stdout.splitlines() if line.startswith("fp32 engine vs the original"))
    assert ", 0 beyond;" in agreement


def test_agreement_counts_near_tie_swaps_apart_from_real_ones():
    agreement_of = load_script("scripts/benchmark.py").Agreement.of
    reference = torch.tensor([[0.9, 0.5, 0.5 + 1e-7, 0.1], [0.9, 0.5, 0.4, 0.1], [0.9, 0.5, 0.4, 0.1]])
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1], [0.9, 0.5, 0.4, 0.1], [0.9, 0.3, 0.4, 0.1]])
    agreement = agreement_of(scores, reference, tolerance=1e-5)
    assert (agreement.identical, agreement.near_ties, agreement.beyond) == (1, 1, 1)
    assert abs(agreement.largest_swap - 0.1) < 1e-6 and abs(agreement.largest_difference - 0.2) < 1e-6


def test_matmul_shapes_account_for_every_matrix_product_of_the_image_encoder():
    """The shapes the forward hooks count make up the FLOPs torch's `FlopCounterMode` counts in the image encoder's
    matrix products (eager attention, whose products it sees; all but the patch embedding's convolution)."""
    torch.manual_seed(0)
    config = tiny_config()
    config.vision_config._attn_implementation = "eager"
    vision_model = aptm.APTMModel(config).eval().vision_model
    pixel_values = torch.randn(2, 3, *config.vision_config.image_size)
    linears, attentions = load_script("scripts/benchmark.py").matmul_shapes(vision_model, pixel_values)
    assert sum(attentions.values()) == sum(config.vision_config.depths)
    counted = (sum(count * 2 * rows * inner * outer for (rows, inner, outer), count in linears.items())
               + sum(count * 2 * 2 * batch * length * head_dim * keys
                     for (batch, length, head_dim, keys), count in attentions.items()))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        vision_model(pixel_values)
    flops = {str(operation): value for operation, value in counter.get_flop_counts()["Global"].items()}
    assert counted == flops["aten.addmm"] + flops["aten.mm"] + flops["aten.bmm"] > 0


def test_memory_table_smoke():
    """`--memory` prints one row per size with the full matrix's size and both paths' growth, each in a fresh
    process, and for sizes sharing a gallery what the extra queries added, streamed."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--memory", "96x48,192x48"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for size in ("96 x 48", "192 x 48"):
        row = next(line for line in result.stdout.splitlines() if size in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "0 MB" and all(cell.endswith(" MB") and float(cell[:-3]) >= 0 for cell in cells[2:])
    assert "streamed, 96 more queries x 48 images: " in result.stdout


def test_attribute_throughput_smoke():
    """`--attributes` prints one row per configuration: both paths' images/s, the speed-up and their scores'
    largest difference, which is within float32 rounding (the fused batch scores what the per-image loop does)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--configs", "tiny",
                             "--attributes", "3"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "54 prompts), 3 images" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("| aptm-tiny"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1].endswith(" i/s") and cells[2].endswith(" i/s") and cells[3].endswith("x")
    assert float(cells[4]) < 1e-4


def test_memory_mapped_index_smoke():
    """`--index` writes, maps and searches a synthetic index; only the re-ranked candidates' tokens are read (16 for
    each of the 9 re-ranking searches, of 300 images)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--index", "300"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for measure in ("index written (synthetic shards, float16)", "load, memory-mapped", "query latency, dual encoder",
                    "query latency, re-rank k=16", "144 token rows read"):
        assert measure in result.stdout, measure
