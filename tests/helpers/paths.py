"""Where things are: the repository root, and the application scripts loaded as modules."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_script(relative_path):
    """Import an application file (e.g. `scripts/quickstart.py`, `space/app.py`) as a module, without running its
    `__main__` block."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(f"aptm_app_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
