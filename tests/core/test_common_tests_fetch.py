"""The fetch of transformers' common test files (`helpers.transformers_common`): where PyPI cannot be reached, the
test modules that use them are skipped with pip's message, and nothing half-built is left in the cache."""

import subprocess

import pytest

from helpers import transformers_common


def test_unreachable_registry_skips_with_pips_message(tmp_path, monkeypatch):
    monkeypatch.setenv("APTM_TEST_CACHE", str(tmp_path))

    def offline_pip(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (from versions: none)")

    monkeypatch.setattr(transformers_common.subprocess, "run", offline_pip)
    with pytest.raises(pytest.skip.Exception, match="Could not find a version"):
        transformers_common.common_tests()
    assert list(tmp_path.rglob("*")) == []
