"""The benchmark runs end to end on a small gallery and asserts identical rankings itself."""

import subprocess
import sys

from helpers.paths import REPO


def test_benchmark_smoke():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--configs", "tiny", "--gallery",
                             "10", "--queries", "6"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rankings identical: True" in result.stdout
    for measure in ("gallery encoding", "query latency, dual encoder", "query latency, re-rank k=10", "full evaluation",
                    "re-rank floor"):
        assert measure in result.stdout, measure


def test_memory_table_smoke():
    """`--memory` prints one row per size with the full matrix's size and both paths' growth, each in a fresh
    process."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--memory", "96x48"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = next(line for line in result.stdout.splitlines() if "96 x 48" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "0 MB" and all(cell.endswith(" MB") and float(cell[:-3]) >= 0 for cell in cells[2:])


def test_memory_mapped_index_smoke():
    """`--index` writes, maps and searches a synthetic index; only the re-ranked candidates' tokens are read (16 for
    each of the 9 re-ranking searches, of 300 images)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--index", "300"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for measure in ("index written (synthetic shards, float16)", "load, memory-mapped", "query latency, dual encoder",
                    "query latency, re-rank k=16", "144 token rows read"):
        assert measure in result.stdout, measure
