"""sentence-transformers for the tests that run it (a bare environment, the documentation's snippets): a cached
overlay (`helpers.overlay`) of it and of the requirements it adds to the test environment, at the versions
`constraints/ci.txt` pins."""

from pathlib import Path

from helpers.overlay import overlay
from helpers.paths import REPO

# sentence-transformers and what it installs beyond the test environment (scikit-learn's own requirements included)
PACKAGES = ("sentence-transformers", "scikit-learn", "scipy", "threadpoolctl", "narwhals")


def pinned(names: tuple[str, ...]) -> list[str]:
    """`name==version` of each of `names` as `constraints/ci.txt` pins it."""
    pins = dict(line.split("==", 1) for line in (REPO / "constraints" / "ci.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    return [f"{name}=={pins[name]}" for name in names]


def sentence_transformers_packages() -> Path:
    """The overlay folder to put on a Python's `PYTHONPATH`, built on first use (skipping the test when PyPI cannot
    be reached to build it)."""
    return overlay("sentence-transformers", pinned(PACKAGES))
