"""Every snippet of the README and of the documentation pages (`docs/*.md`) runs: the shell commands with
`python scripts/...` or `torchrun ...` first, in page order (a command that several pages show runs once), then each
page's Python blocks in order as one script with its own namespace, all in a prepared folder with a small quickstart
checkpoint, the procedural data, a CUHK-PEDES-format fixture, footage and an original checkpoint. The set-up block
(`make ...`, which runs this suite) is the one exception. The README stays a front page whose links resolve."""

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
from helpers.sentence_transformers_overlay import sentence_transformers_packages

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "CHANGELOG.md"]
BLOCKS = {page: re.findall(r"```(python|bash)\n(.*?)```", page.read_text(), re.S) for page in PAGES}
RUN = ("python ", "torchrun ")


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


def shell_commands():
    """The commands of every page's shell blocks, in page order, each once."""
    lines = [line for blocks in BLOCKS.values() for kind, code in blocks if kind == "bash"
             for line in code.splitlines() if line.strip() and not line.startswith("#")]
    unknown = [line for line in lines if not line.startswith((*RUN, "make "))]
    assert not unknown, f"shell lines this test would not run: {unknown}"
    return list(dict.fromkeys(line for line in lines if line.startswith(RUN)))


def test_snippets(workdir, tmp_path):
    """The shell commands in order, against a local fake Hub (pushes land there), then each page's Python blocks as
    one script in that environment (one process, a fresh namespace per page), so snippets that load what the
    commands pushed by id work as a user's would."""
    commands = shell_commands()
    assert any("convert_original_checkpoint" in c for c in commands) and any("torchrun" in c for c in commands)
    scripts = []
    for page, blocks in BLOCKS.items():
        code = "\n".join(code for kind, code in blocks if kind == "python")
        if code:
            scripts.append(tmp_path / f"{page.stem}_snippets.py")
            scripts[-1].write_text(code)
    assert len(scripts) >= 5
    runner = tmp_path / "run_pages.py"
    runner.write_text("import runpy, sys\nfor path in sys.argv[1:]:\n    print('page', path, flush=True)\n"
                      "    runpy.run_path(path, run_name='__main__')\n")
    server, url = serve(0, tmp_path / "hub")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    # sentence-transformers (docs/hub.md) from its cached overlay, which shadows nothing the environment holds
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(sentence_transformers_packages())]), HF_ENDPOINT=url,
               HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    try:
        for command in commands:
            if "convert_original_checkpoint" in command and not (workdir / "checkpoint_best.pth").is_file():
                continue  # no golden checkpoint on this machine
            argv = command.replace("python ", f"{sys.executable} ", 1).replace(
                "torchrun ", f"{sys.executable} -m torch.distributed.run --standalone ", 1)
            argv = shlex.split(argv)  # quoted arguments, e.g. a search sentence
            result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, (command, result.stderr[-3000:])
        result = subprocess.run([sys.executable, str(runner), *map(str, scripts)], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (result.stdout.splitlines()[-1:], result.stderr[-3000:])
    finally:
        server.shutdown()


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_front_page_and_links():
    """The README is a front page (at most 150 lines, the Hub pipeline within its first 60), and every relative link
    of the README and the pages reaches a file, and a heading of it where the link names one."""
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) <= 150
    assert any('pipeline("text-person-retrieval"' in line for line in readme[:60])
    assert (REPO / "docs" / "images" / "procedural_pedestrians.png").stat().st_size <= 200_000
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: link to {target}: no such file"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: link to {target}: no such heading"
