"""Every snippet of the README runs: the Python blocks in order (one namespace, in a prepared folder with a small
quickstart checkpoint, the procedural data, a CUHK-PEDES-format fixture and an original checkpoint), and the shell
commands with `python scripts/...` or `torchrun ...`. The set-up block (`make ...`, which runs this suite) is the one
exception."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

from modeling_aptm import APTMForPreTraining

from helpers.dataset_files import processed_tree
from helpers.fake_hub import serve
from helpers.footage import pedestrian_video
from helpers.golden import GOLDEN
from helpers.images import person_image
from helpers.models import tiny_config
from helpers.paths import REPO

BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", (REPO / "README.md").read_text(), re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, processor):
    folder = tmp_path_factory.mktemp("readme")
    for name in ("scripts", "metrics"):
        os.symlink(REPO / name, folder / name)
    checkpoint = folder / "outputs" / "quickstart" / "checkpoint"
    torch.manual_seed(0)
    APTMForPreTraining(tiny_config()).save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    from datasets_scripts import load_aptm_dataset

    load_aptm_dataset("procedural", data_dir=folder / "data" / "procedural")
    processed_tree(folder / "data" / "CUHK-PEDES", "cuhk")
    if (GOLDEN / "A" / "checkpoint.pth").is_file():
        shutil.copy(GOLDEN / "A" / "checkpoint.pth", folder / "checkpoint_best.pth")
        for name in ("config_swin.json", "config_bert.json"):
            shutil.copy(GOLDEN / "A" / name, folder / name)
    (folder / "outputs" / "quickstart" / "metrics.json").write_text('{"retrieval": {"R@1": 1.0}}')
    (folder / "my_videos").mkdir()  # footage: a generated street video, an archive of crops, an example picture
    pedestrian_video(folder / "my_videos" / "street.avi")
    with zipfile.ZipFile(folder / "photos.zip", "w") as archive:
        for seed in (1, 2):
            person_image(seed).save(folder / f"person{seed}.jpg")
            archive.write(folder / f"person{seed}.jpg", f"people/{seed}.jpg")
    person_image(3).save(folder / "query.jpg")
    return folder


def test_snippets(workdir, tmp_path):
    """The shell commands in order, against a local fake Hub (pushes land there), then the Python blocks as one
    script in that environment, so snippets that load what the commands pushed by id work as a user's would."""
    commands = [line for kind, code in BLOCKS if kind == "bash" for line in code.splitlines()
                if line.startswith(("python ", "torchrun "))]
    assert any("convert_original_checkpoint" in c for c in commands) and any("torchrun" in c for c in commands)
    snippets = [code for kind, code in BLOCKS if kind == "python"]
    assert len(snippets) >= 4
    (tmp_path / "readme_snippets.py").write_text("\n".join(snippets))
    server, url = serve(0, tmp_path / "hub")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(PYTHONPATH=str(REPO), HF_ENDPOINT=url, HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1",
               HF_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    try:
        for command in commands:
            if "convert_original_checkpoint" in command and not (workdir / "checkpoint_best.pth").is_file():
                continue  # no golden checkpoint on this machine
            argv = command.replace("python ", f"{sys.executable} ", 1).replace(
                "torchrun ", f"{sys.executable} -m torch.distributed.run --standalone ", 1)
            argv = shlex.split(argv)  # quoted arguments, e.g. a search sentence
            result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, (command, result.stderr[-3000:])
        result = subprocess.run([sys.executable, str(tmp_path / "readme_snippets.py")], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        server.shutdown()
