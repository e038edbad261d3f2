"""The quickstart is bit-identical for a given seed on one machine, idle or loaded: two runs of a small recipe in
fresh processes with different hash seeds, the second beside processes that keep every core busy, give the same
metrics, bit for bit, and the same weights (within float32 rounding: see the test)."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager

from safetensors.torch import load_file

from aptm.training.arguments import RECIPES_DIR

from helpers.models import TINY
from helpers.paths import REPO

METRIC_SECTIONS = ("validation", "retrieval", "attributes", "retrieval_dual_encoder", "attributes_dual_encoder")


@contextmanager
def busy_cores(count):
    """`count` processes spinning on the CPU for the duration of the block."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def run_quickstart(output_dir, recipe, hash_seed):
    environment = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    subprocess.run([sys.executable, str(REPO / "scripts" / "quickstart.py"), "--output-dir", str(output_dir),
                    "--recipe", str(recipe), "--seed", "3", "--max-steps", "3", "--threads", "2"],
                   check=True, env=environment, cwd=REPO, capture_output=True)
    summary = json.loads((output_dir / "summary.json").read_text())
    return summary, load_file(output_dir / "checkpoint" / "model.safetensors")


def test_loaded_run_is_bit_identical_to_idle_run(tmp_path):
    recipe = json.loads((RECIPES_DIR / "tiny_procedural.json").read_text())
    recipe.update(config_overrides=TINY, text_init=None, per_device_train_batch_size=6, logging_steps=1,
                  dataset_options={"num_identities": 12, "views_per_identity": 2, "seed": 0})
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    idle, idle_weights = run_quickstart(tmp_path / "idle", path, hash_seed=1)
    with busy_cores(os.cpu_count() or 2):
        loaded, loaded_weights = run_quickstart(tmp_path / "loaded", path, hash_seed=2)
    assert idle["threads"] == loaded["threads"] == 2
    for section in METRIC_SECTIONS:
        assert idle[section] and loaded[section] == idle[section], section
    assert idle["examples"] == loaded["examples"]
    assert loaded_weights.keys() == idle_weights.keys()
    # Under heavy load a few image-encoder tensors have differed in their last bits (up to 4e-9 in 2 of 7 tries, the
    # metrics identical; the cause is not found yet, see CHANGELOG): equal within float32 rounding of weights ~1
    differences = {name: (tensor - loaded_weights[name]).abs().max().item() for name, tensor in idle_weights.items()}
    assert max(differences.values()) <= 1e-7, {name: d for name, d in differences.items() if d > 1e-7}
