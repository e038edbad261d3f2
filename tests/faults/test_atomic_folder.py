"""`atomic_folder`, the way the library writes a whole save (a model's, a checkpoint's): a new folder appears whole
or not at all, an existing one keeps what the save does not replace, and what a killed save left is cleared."""

import pytest

from datasets_scripts.files import atomic_folder


def test_a_save_stopped_midway_leaves_no_folder_and_the_next_save_clears_its_leftovers(tmp_path):
    target = tmp_path / "final"
    with pytest.raises(SystemExit), atomic_folder(target) as partial:
        (partial / "model.safetensors").write_bytes(b"weights")
        raise SystemExit("killed before config.json")
    assert not target.exists()
    (tmp_path / ".final.x1.partial").mkdir()  # what a SIGKILL (no cleanup) leaves beside the folder
    with atomic_folder(target) as partial:
        (partial / "model.safetensors").write_bytes(b"weights")
        (partial / "config.json").write_text("{}")
        assert not target.exists()  # nothing under the final name until the block ends
    assert sorted(file.name for file in target.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(file.name for file in tmp_path.iterdir()) == ["final"]


def test_a_save_over_a_folder_replaces_its_files_and_keeps_the_rest(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "config.json").write_text("old")
    (tmp_path / "notes.txt").write_text("kept")
    with atomic_folder(tmp_path, last="config.json") as partial:
        (partial / "config.json").write_text("new")
        (partial / "model.safetensors").write_bytes(b"weights")
    assert (tmp_path / "config.json").read_text() == "new" and (tmp_path / "notes.txt").read_text() == "kept"
    assert sorted(file.name for file in tmp_path.iterdir()) == ["checkpoint-2", "config.json", "model.safetensors",
                                                                "notes.txt"]
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*.partial"))
