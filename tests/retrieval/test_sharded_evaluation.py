"""Evaluation split across 2 gloo processes on CPU (`torchrun`) gives every process the metrics, scores and gallery
index of one process, for every fusion, the original's 4-GPU fusion emulated, and splits two processes do not divide;
each process encodes only its share, in the trainer's validation too. The evaluate CLI under `torchrun` reports the
one-process metrics."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from accelerate import PartialState

import aptm
from aptm.metrics import RetrievalMetrics, retrieval_metrics
from aptm.retrieval.sharding import ProcessShards

from helpers.dataset_files import processed_tree
from helpers.models import tiny_config
from helpers.paths import REPO, load_script
from helpers.sharded_evaluation import EVALUATIONS, GALLERY, QUERIES, evaluate_all

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def launch(*command, cwd=REPO):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    result = subprocess.run([*TORCHRUN, *command], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharded")
    launch(str(REPO / "tests" / "helpers" / "sharded_evaluation_worker.py"), str(folder))
    return [torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    return evaluate_all(sharded=False, folder=tmp_path_factory.mktemp("trainer"))


@pytest.mark.parametrize("evaluation", ["evaluate_retrieval", *EVALUATIONS])
def test_two_processes_give_the_metrics_and_scores_of_one(sharded, alone, evaluation):
    expected = alone[evaluation]
    for rank in sharded:
        assert rank[evaluation]["metrics"] == pytest.approx(expected["metrics"], abs=1e-9)
        torch.testing.assert_close(rank[evaluation]["scores"], expected["scores"], rtol=0, atol=1e-5)
    assert 0 < expected["metrics"]["mAP"] < 100  # rankings that can differ


def test_the_emulated_process_count_is_the_option_not_the_real_one(alone):
    emulated, one = alone["aptm emulating 4 GPUs"]["scores"], alone["aptm"]["scores"]
    assert not torch.allclose(emulated, one, atol=1e-3)


def test_the_gathered_index_is_the_whole_gallery_in_order(sharded, alone):
    for rank in sharded:
        for name, tensor in alone["index"].items():
            torch.testing.assert_close(rank["index"][name], tensor, rtol=0, atol=1e-5)
        assert rank["paths"] == alone["paths"] == [f"{i}.jpg" for i in range(GALLERY)]


def test_each_process_encodes_its_share(sharded, alone):
    """Each process encodes its share of the gallery and of the queries, and scores the image-to-text columns of its
    share of the gallery."""
    assert alone["encoded"] == {"images": GALLERY, "texts": QUERIES, "i2t columns": GALLERY}
    assert [rank["encoded"] for rank in sharded] == [{"images": 6, "texts": 5, "i2t columns": 6},
                                                     {"images": 5, "texts": 4, "i2t columns": 5}]
    assert {"i2t_R@1", "i2t_mAP"} <= alone["evaluate_retrieval"]["metrics"].keys()


def test_attribute_metrics_of_two_processes_equal_one(sharded, alone):
    expected = alone["attributes"]
    for rank in sharded:
        assert rank["attributes"]["per_attribute_mA"] == pytest.approx(expected["per_attribute_mA"], abs=1e-9)
        assert {**rank["attributes"], "per_attribute_mA": None} == pytest.approx({**expected, "per_attribute_mA": None},
                                                                                 abs=1e-9)


def test_the_trainer_validates_a_share_per_process_with_the_metrics_of_one(sharded, alone):
    expected = alone["trainer"]
    assert {"eval_R@1", "eval_mAP", "eval_mA"} <= expected.keys()
    for rank in sharded:
        assert rank["trainer"] == pytest.approx(expected, abs=1e-9)
    one, two = alone["trainer encoded"], [rank["trainer encoded"] for rank in sharded]
    assert [sum(counts[kind] for counts in two) for kind in ("images", "texts")] == [one["images"], one["texts"]]
    assert all(counts["images"] < one["images"] and counts["texts"] < one["texts"] for counts in two)


def test_the_evaluate_cli_under_torchrun_reports_the_metrics_of_one_process(tmp_path):
    torch.manual_seed(0)
    aptm.APTMModel(tiny_config()).save_pretrained(tmp_path / "model")
    aptm.build_processor().save_pretrained(tmp_path / "model")
    processed_tree(tmp_path / "data", "cuhk")  # 3 gallery images, 6 captions
    options = ["--model", str(tmp_path / "model"), "--dataset", "cuhk-pedes", "--data-dir", str(tmp_path / "data"),
               "--k", "2", "--fusion", "aptm", "--world-size", "4"]
    printed = launch(str(REPO / "scripts" / "evaluate.py"), *options, "--output-dir", str(tmp_path / "two"))
    expected = load_script("scripts/evaluate.py").main([*options, "--output-dir", str(tmp_path / "one")])
    written = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert written["retrieval"] == pytest.approx(expected["retrieval"], abs=1e-9)
    assert printed.count("retrieval (cuhk-pedes test)") == 1  # printed by the first process only
    assert (tmp_path / "two" / "retrieval_grid.png").is_file()


class StateOf:
    """accelerate's `PartialState` as process `rank` of `world_size` sees it, for its splits alone (no process
    group)."""

    split_between_processes = PartialState.split_between_processes

    def __init__(self, rank, world_size):
        self.process_index, self.num_processes = rank, world_size


def shards_of(rank, world_size):
    """The shares a process of `world_size` would take (no process group needed for `share` and `over`)."""
    return ProcessShards(StateOf(rank, world_size))


def test_shares_are_contiguous_in_rank_order_the_first_ones_longer():
    assert [shards_of(rank, 3).share(11) for rank in range(3)] == [range(0, 4), range(4, 8), range(8, 11)]
    assert [shards_of(rank, 2).share(9) for rank in range(2)] == [range(0, 5), range(5, 9)]
    assert [shards_of(rank, 4).share(2) for rank in range(4)] == [range(0, 1), range(1, 2), range(0), range(0)]
    assert ProcessShards().share(5) == range(5)


def test_fewer_rows_than_processes_are_computed_by_each_alone():
    assert shards_of(1, 4).over(4).world_size == 4
    alone = shards_of(1, 4).over(3)
    assert (alone.rank, alone.world_size, alone.share(3)) == (0, 1, range(3))


def test_sharded_needs_torch_distributed():
    with pytest.raises(ValueError, match="sharded=True needs torch.distributed initialised"):
        ProcessShards.of_launch(True)
    assert ProcessShards.of_launch().world_size == ProcessShards.of_launch(False).world_size == 1


def test_metrics_of_disjoint_queries_merge_by_their_totals():
    rng = np.random.default_rng(0)
    scores, query_ids, gallery_ids = rng.random((9, 7)), rng.integers(0, 3, 9), np.arange(7) % 3
    parts = []
    for rows in (slice(0, 5), slice(5, 9)):
        part = RetrievalMetrics(gallery_ids, ties="pessimistic")
        part.add(scores[rows], query_ids[rows])
        parts.append(part.totals())
    merged = RetrievalMetrics(gallery_ids, ties="pessimistic")
    merged.merge(parts[0] + parts[1])
    assert merged.compute() == pytest.approx(retrieval_metrics(scores, query_ids, gallery_ids, ties="pessimistic"))
    with pytest.raises(ValueError, match="totals must have 6 entries"):
        merged.merge(parts[0][:3])


def test_queries_without_a_relevant_image_are_named_before_any_ranking():
    with pytest.raises(ValueError, match="first: query 3, person id 9"):
        RetrievalMetrics([0, 1, 1]).check_queries([0, 1, 9, 9], first=1)


def test_an_accelerate_state_that_disagrees_with_torch_distributed_is_named(monkeypatch):
    """A `PartialState` set up for another run (one process while torch.distributed runs two) stops the split with
    the cause instead of giving every process every row."""
    from aptm.retrieval import sharding

    state = StateOf(0, 1)
    state.distributed_type = "NO"
    monkeypatch.setattr(sharding.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sharding.dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(sharding.dist, "get_rank", lambda group=None: 1)
    monkeypatch.setattr(sharding, "launched_state", lambda: state)
    with pytest.raises(RuntimeError, match=r"sees process 0 of 1 \(NO\) but torch.distributed runs process 1 of 2.*"
                                           r"use_cpu=True"):
        ProcessShards.of_launch()
