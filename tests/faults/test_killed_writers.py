"""Writers killed with SIGKILL at random moments (seeded): the gallery index built in shards and saved over another,
a model's `save_pretrained` over another, `FootageIndex.add_sources`, the prepared-dataset cache, and training
checkpoints with the final save. A few kills each here; the longer runs
(20 and more per writer) are `python tests/helpers/kill_writers.py --kills 20`, whose module docstring says what is
checked."""

import pytest
import torch

from helpers.kill_writers import kill_writer, writers


@pytest.mark.parametrize("name", ["index_build", "index_save", "save_pretrained", "footage", "dataset", "training"])
def test_a_killed_writer_leaves_a_store_that_opens_and_a_rerun_completes_it(name, tmp_path):
    kills = 1 if name in ("training", "footage") else 2  # the slower writers
    report = kill_writer(name, writers(tmp_path, training_steps=2)[name], kills=kills, seed=0, workdir=tmp_path)
    assert len(report["kills"]) == kills
    assert all(kill["rerun_identical"] for kill in report["kills"])


def test_a_save_stopped_between_its_two_files_is_refused_naming_them_then_saved_again(tmp_path, monkeypatch):
    """The moment random kills rarely hit: the new tensors in place, the old paths still there."""
    import aptm.retrieval.index as index_module
    from aptm.retrieval import GalleryIndex

    from helpers.kill_writers import IndexSave

    def killed(*args, **kwargs):
        raise SystemExit("killed before index.json")

    IndexSave.gallery(1).save(tmp_path)
    new = IndexSave.gallery(2)
    with monkeypatch.context() as patched:
        patched.setattr(index_module, "write_json_atomically", killed)
        with pytest.raises(SystemExit):
            new.save(tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path / 'index.safetensors'} and {tmp_path / 'index.json'} come from "
                                         "different saves"):
        GalleryIndex.load(tmp_path)
    new.save(tmp_path)
    loaded = GalleryIndex.load(tmp_path)
    assert loaded.paths == new.paths and torch.equal(loaded.image_features, new.image_features)
    assert not list(tmp_path.glob(".*.partial"))  # no temporary file left by the completed saves


@pytest.mark.parametrize("kept", [0, 5, 100, 0.5, -1], ids=["empty", "5 bytes", "100 bytes", "half", "all but 1"])
def test_a_weights_file_cut_short_is_refused_naming_it(tmp_path, processor, kept):
    """What a `save_pretrained` killed inside its weights file leaves (random kills rarely land there)."""
    import aptm

    from helpers.models import saved_checkpoint

    saved_checkpoint(tmp_path, processor)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(kept * len(data)) if isinstance(kept, float) else kept % len(data)])
    with pytest.raises(ValueError, match=f"{weights} cannot be read .*cut short"):
        aptm.load_checkpoint(tmp_path, device="cpu")
