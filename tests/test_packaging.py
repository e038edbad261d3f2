"""The package as a user installs it: a wheel built from the checkout, installed in a Python that cannot see the
checkout, carries its bundled recipes (package data) and its library entry points work."""

import json
import subprocess
import sys

from helpers.bare_environment import bare_python
from helpers.paths import REPO

PROGRAM = """
import json, sys
from pathlib import Path
import aptm, configuration_aptm, datasets_scripts
from aptm.training.arguments import BUNDLED_RECIPES, RECIPES_DIR, parse_training_arguments, recipe_arguments
site = Path(sys.argv[1]).resolve()
modules = [Path(module.__file__).resolve() for module in (aptm, configuration_aptm, datasets_scripts)]
assert all(path.is_relative_to(site) for path in modules), modules
recipes = sorted(path.name for path in RECIPES_DIR.glob("*.json"))
for name in recipes:
    recipe_arguments(name, data_dir="d", output_dir="o")
model, data, *_ = parse_training_arguments(["--task", "retrieval", "--dataset", "procedural", "--output_dir", "o",
                                            "--data_dir", "d"])
tokens = aptm.build_processor()(text=["a man in a red coat"])["input_ids"]
json.dump({"recipes_dir": str(RECIPES_DIR), "recipes": recipes, "preset": model.preset, "dataset": data.dataset,
           "tokens": len(tokens[0]), "bundled": sorted(BUNDLED_RECIPES.values())}, open("out.json", "w"))
"""


def test_an_installed_wheel_has_its_recipes_and_runs(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("aptm_hf-*.whl")
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run([bare_python(tmp_path / "venv"), "-c", PROGRAM, str(site)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site),
                                                      "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["recipes_dir"] == str(site / "aptm" / "recipes")
    assert out["recipes"] == sorted(path.name for path in (REPO / "aptm" / "recipes").glob("*.json"))
    assert set(out["bundled"]) <= set(out["recipes"]) and out["dataset"] == "procedural" and out["tokens"] > 3
