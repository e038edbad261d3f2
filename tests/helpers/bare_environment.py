"""A Python environment without this project: a fresh venv that sees the test environment's installed packages
(torch, transformers, Pillow, evaluate, ...) but not the project's code, which the editable install exposes through a
`.pth` file that a path added this way does not process."""

import subprocess
import sys
import sysconfig
from pathlib import Path


def bare_python(folder):
    """Create the venv in `folder` (once) and return its interpreter."""
    folder = Path(folder)
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
        site = next(folder.glob("lib/python*/site-packages"))
        (site / "installed_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python)
