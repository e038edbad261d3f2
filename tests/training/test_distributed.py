"""Two gloo processes on CPU, started by `torchrun` and by `accelerate launch`: one step of the tiny model on half
of a fixed global batch each gives the one-process loss on the whole batch, and the gradients that each
`itc_gradient` mode promises (computed by hand on one process); `APTMTrainer` runs them as DDP without a GPU."""

import json
import os
import subprocess
import sys

import pytest
import torch

from modeling_aptm import image_text_contrastive_loss

from helpers.models import global_batch, tiny_model
from helpers.paths import REPO

WORKER = str(REPO / "tests" / "helpers" / "ddp_worker.py")
TRAINER_WORKER = str(REPO / "tests" / "helpers" / "trainer_worker.py")
PHASE_WORKER = str(REPO / "tests" / "helpers" / "matching_phase_worker.py")
ITC_ONLY = {"itm_loss_weight": 0.0, "mlm_loss_weight": 0.0}
# the worker's runs, in this order
RUNS = {"all losses, global": {"itc_gradient": "global"},
        "all losses, local": {"itc_gradient": "local"},
        "itc, local": {"itc_gradient": "local", **ITC_ONLY},
        "itc, global": {"itc_gradient": "global", **ITC_ONLY}}
LAUNCHERS = {  # two processes each (but "python": one); a free rendezvous port
    "python": [sys.executable],
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # --multi_gpu starts the processes through torchrun, on CPU too (gloo); `--cpu --num_processes 2` starts one
    # process: accelerate's multi-CPU launch needs MPI
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no",
                   "--dynamo_backend", "no"],
}


def launch(launcher, folder, runs, worker=WORKER):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    arguments = [json.dumps(runs)] if worker == WORKER else [str(folder / "out")]
    result = subprocess.run([*LAUNCHERS[launcher], worker, str(folder / "ddp.pt"), *arguments],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(folder / "ddp.pt", weights_only=True)


@pytest.fixture(scope="module")
def torchrun_runs(tmp_path_factory):
    return dict(zip(RUNS, launch("torchrun", tmp_path_factory.mktemp("torchrun"), list(RUNS.values()))))


def one_process(**overrides):
    """Loss and gradients of one step of one process on the whole global batch."""
    model = tiny_model(**overrides)
    out = model(**global_batch())
    out.loss.backward()
    return out.loss.item(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def itc_gradients_by_hand(itc_gradient, world=2):
    """DDP's gradient of ITC alone with `world` processes, on one process: process r's loss (the same global-batch
    loss on every process) reaches only its own slice of the gathered features with "local", every slice with
    "global"; DDP averages the processes' gradients."""
    model, batch = tiny_model(), global_batch()
    size = len(batch["pixel_values"]) // world
    grads = {}
    for rank in range(world):
        model.zero_grad()
        image = model.image_features_from_embeds(model.vision_model(batch["pixel_values"]).last_hidden_state)
        text = model.text_features_from_embeds(
            model.text_model(batch["input_ids"], batch["attention_mask"]).last_hidden_state)
        if itc_gradient == "local":
            own = torch.zeros(len(image), 1, dtype=torch.bool)
            own[rank * size:(rank + 1) * size] = True
            image, text = torch.where(own, image, image.detach()), torch.where(own, text, text.detach())
        image_text_contrastive_loss(image, text, model.temp, batch["person_ids"]).backward()
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                grads[name] = grads.get(name, 0) + parameter.grad / world
    return grads


def assert_close(got, expected):
    for name, grad in expected.items():  # equal up to float summation order (2 x 2 images instead of 4)
        assert (got[name] - grad).norm() <= 1e-4 * grad.norm() + 1e-7, name


def test_global_itc_gradient_equals_one_process(torchrun_runs):
    loss, expected = one_process(itc_gradient="global")
    run = torchrun_runs["all losses, global"]
    assert run["loss"].item() == pytest.approx(loss, rel=1e-5)
    assert run["grads"].keys() == expected.keys()
    assert_close(run["grads"], expected)


@pytest.mark.parametrize("itc_gradient", ["local", "global"])
def test_itc_gradient_modes_match_the_hand_computation(torchrun_runs, itc_gradient):
    expected = itc_gradients_by_hand(itc_gradient)
    run = torchrun_runs[f"itc, {itc_gradient}"]
    assert run["loss"].item() == pytest.approx(one_process(**ITC_ONLY)[0], rel=1e-5)
    assert_close(run["grads"], expected)
    # parameters outside ITC (weights 0 here) get zero gradients under DDP
    assert all(not grad.any() for name, grad in run["grads"].items() if name not in expected)


def test_local_itc_gradient_is_one_over_world_size_of_the_global_one_except_the_temperature():
    local, global_ = itc_gradients_by_hand("local"), itc_gradients_by_hand("global")
    assert torch.allclose(local["temp"], global_["temp"])
    for name in ("vision_model.patch_embed.proj.weight", "vision_proj.weight", "text_proj.weight"):
        assert torch.allclose(local[name], global_[name] / 2, rtol=1e-4, atol=1e-6), name
        assert not torch.allclose(local[name], global_[name], rtol=1e-2), name


def test_local_itc_gradient_differs_from_one_process_with_all_losses(torchrun_runs):
    """The default, "local", is the original's: with all losses the step is not the one-process step."""
    _, expected = one_process()
    got = torchrun_runs["all losses, local"]["grads"]
    name = "vision_proj.weight"
    assert (got[name] - expected[name]).norm() > 1e-2 * expected[name].norm()


def test_accelerate_launch_runs_two_processes_equal_to_one(tmp_path):
    (run,) = launch("accelerate", tmp_path, [{"itc_gradient": "global"}])
    loss, expected = one_process(itc_gradient="global")
    assert run["loss"].item() == pytest.approx(loss, rel=1e-5)
    assert run["grads"].keys() == expected.keys()
    assert_close(run["grads"], expected)


def test_trainer_runs_several_cpu_processes_as_ddp(tmp_path):
    """Without a GPU, transformers runs several processes as DDP only with `use_cpu`, which the arguments set under a
    launcher: each process then takes its share of the batch, and the logged loss is the one-process loss."""
    run = launch("torchrun", tmp_path, None, worker=TRAINER_WORKER)
    loss, _ = one_process(itc_gradient="global", itm_loss_weight=0.0)
    assert run["world_size"] == 2
    assert run["loss"] == pytest.approx(loss, abs=2e-4)  # the Trainer logs 4 decimals


def test_matching_phase_on_two_processes_equals_one(tmp_path):
    """The matching phase under `torchrun`: DDP averages the matching head's gradients, so two processes with 2
    captions each give the one-process gradients and update on the 4, and both processes hold the same head."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = launch("python", tmp_path / "one", None, worker=PHASE_WORKER)
    two = launch("torchrun", tmp_path / "two", None, worker=PHASE_WORKER)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["grads"].keys() == two["grads"].keys() and all(
        name.startswith(("fusion_model.", "itm_head.")) for name in one["grads"])
    assert_close(two["grads"], one["grads"])
    first, second = two["heads"]
    initial = tiny_model().state_dict()
    for name, value in one["heads"][0].items():
        assert torch.equal(first[name], second[name]), name
        torch.testing.assert_close(first[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(value, initial[name]) for name, value in first.items())
