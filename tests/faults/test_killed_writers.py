"""Writers killed with SIGKILL at random moments (seeded): the gallery index built in shards and saved over another,
the prepared-dataset cache, and training checkpoints with the final save. A few kills each here; the longer runs
(20 and more per writer) are `python tests/helpers/kill_writers.py --kills 20`, whose module docstring says what is
checked."""

import pytest

from helpers.kill_writers import kill_writer, writers


@pytest.mark.parametrize("name", ["index_build", "index_save", "dataset", "training"])
def test_a_killed_writer_leaves_a_store_that_opens_and_a_rerun_completes_it(name, tmp_path):
    kills = 1 if name == "training" else 2
    report = kill_writer(name, writers(tmp_path, training_steps=2)[name], kills=kills, seed=0, workdir=tmp_path)
    assert len(report["kills"]) == kills
    assert all(kill["rerun_identical"] for kill in report["kills"])
