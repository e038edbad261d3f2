"""The files that travel with every checkpoint as remote code import only torch, transformers, numpy, Pillow, the
standard library and each other (relatively when loaded from the Hub, absolutely when installed)."""

import ast
import sys

import pytest

from helpers.paths import REPO

REMOTE_CODE = ("configuration_aptm", "modeling_aptm", "processing_aptm", "retrieval_aptm", "pipeline_aptm",
               "sentence_transformers_aptm", "handler_aptm")
ALLOWED = {"torch", "transformers", "numpy", "PIL", *REMOTE_CODE}


@pytest.mark.parametrize("name", REMOTE_CODE)
def test_remote_code_imports(name):
    tree = ast.parse((REPO / f"{name}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):  # relative: a sibling remote-code file
            assert node.module in REMOTE_CODE, f"{name}.py imports .{node.module}"
    outside = {module for module in imported - ALLOWED if module not in sys.stdlib_module_names}
    assert not outside, f"{name}.py imports {sorted(outside)}"
