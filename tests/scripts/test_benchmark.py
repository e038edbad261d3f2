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
