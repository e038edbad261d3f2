"""The pictures people look at are drawn without touching the host program's matplotlib backend."""

import subprocess
import sys

import numpy as np
from PIL import Image

PROGRAM = """
import matplotlib
matplotlib.use("svg")  # the host program's choice
from aptm.figures import plot_training_curves
plot_training_curves([{"step": 1, "loss": 1.0, "learning_rate": 1e-4},
                      {"step": 2, "loss": 0.5, "eval_R@1": 3.0, "learning_rate": 5e-5}], "curves.png")
print(matplotlib.get_backend())
"""


def test_training_curves_leave_the_backend_alone(tmp_path):
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["svg"]
    pixels = np.asarray(Image.open(tmp_path / "curves.png").convert("L"))
    assert pixels.shape == (450, 1600) and pixels.std() > 5  # three panels drawn, not a blank image
