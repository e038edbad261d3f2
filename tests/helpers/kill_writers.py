"""Kill the project's writers with SIGKILL at random moments and check what they leave behind.

For each writer: one uninterrupted run gives the reference content; then, per kill, the writer is started again in a
fresh folder (holding the previous content where the writer replaces one), killed after a seeded random delay drawn
over the length of the reference write, the store is opened by a fresh process, and the same command is run again to
the end. What must hold: the store opens to a state the writer may legitimately be in (the previous content, a prefix
of the new one for an index built in shards, the new one) or refuses with an error naming the folder, never a partial
shard or a mix of two saves; and the re-run ends with exactly the reference content (features, weights, rows: bit for
bit, in the same order).

One process imports torch once and forks a child per run (the parent itself never runs torch code, so forking is
safe); each child sends back, through a pipe, when it starts writing and a summary (hashes) of what it then reads.

    python tests/helpers/kill_writers.py --writer index_build --kills 20 --seed 0 --workdir /tmp/kills

prints a JSON report (the per-kill seeds, delays and outcomes). The suite runs a few kills per writer
(`tests/faults/test_killed_writers.py`).
"""

import argparse
import hashlib
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import datasets
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `helpers`, when run as a script

import torch  # noqa: E402  (imported once, before forking)

from aptm.retrieval import GalleryIndex  # noqa: E402

NUM_IMAGES, SHARD_SIZE = 12, 2


def digest(*arrays):
    """A short hash of tensors' bytes."""
    hashed = hashlib.sha256()
    for array in arrays:
        hashed.update(array.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return hashed.hexdigest()[:16]


def index_rows(folder):
    """What a gallery index in `folder` holds: its paths and a hash per row (features, image tokens, person id)."""
    index = GalleryIndex.load(folder)
    return {"paths": index.paths, "rows": [digest(index.image_features[row], index.image_embeds[row],
                                                  index.person_ids[row : row + 1]) for row in range(len(index))]}


class Writer:
    """What the harness asks of a writer: `prepare(folder)` puts in what the write replaces (nothing by default),
    `write(folder, started)` writes and returns the summary of what it wrote (calling `started()` when it begins),
    `read(folder)` the summary of what a fresh process finds, `allowed(state, reference, previous)` names a state
    after a kill or raises if it is not one the writer may leave, and `same(rerun, reference)` says whether a re-run
    ended where the uninterrupted run did (by default: equal summaries)."""

    def prepare(self, folder):
        pass

    def same(self, rerun, reference):
        return rerun == reference


class Replacing(Writer):
    """A writer that saves over a previous save: after a kill, the store holds the one or the other, whole."""

    def allowed(self, state, reference, previous):
        if state == previous:
            return "previous save"
        if state == reference:
            return "complete"
        raise AssertionError("the store holds neither the previous save nor the new one")


class IndexBuild(Writer):
    """`RetrievalEngine.build_index` of 12 images in shards of 2 (tiny model); a killed build may leave a prefix of
    the shards."""

    def write(self, folder, started):
        import aptm
        from aptm.retrieval import RetrievalEngine
        from helpers.images import person_image
        from helpers.models import tiny_config

        torch.manual_seed(0)
        engine = RetrievalEngine(aptm.APTMModel(tiny_config()).eval(), aptm.build_processor(), progress=False)
        images = [person_image(seed) for seed in range(NUM_IMAGES)]
        started()
        engine.build_index(images, folder, person_ids=[i // 2 for i in range(NUM_IMAGES)],
                           paths=[f"{i}.jpg" for i in range(NUM_IMAGES)], shard_size=SHARD_SIZE)
        return self.read(folder)

    def read(self, folder):
        return index_rows(folder)

    def allowed(self, state, reference, previous):
        count = len(state["rows"])
        if state["rows"] != reference["rows"][:count] or state["paths"] != reference["paths"][:count]:
            raise AssertionError("the index is not a prefix of the uninterrupted build")
        return "complete" if count == len(reference["rows"]) else f"prefix of {count} rows"


class IndexSave(Replacing):
    """`GalleryIndex.save` of 3000 random rows over a saved index of other rows (large enough for kills to land
    inside the file writes)."""

    rows = 3000

    @staticmethod
    def gallery(seed):
        generator = torch.Generator().manual_seed(seed)
        return GalleryIndex(torch.randn(IndexSave.rows, 16, generator=generator),
                            torch.randn(IndexSave.rows, 49, 64, generator=generator),
                            torch.randint(0, 100, (IndexSave.rows,), generator=generator),
                            [f"{seed}/{row}.jpg" for row in range(IndexSave.rows)])

    def prepare(self, folder):
        self.gallery(1).save(folder)

    def write(self, folder, started):
        gallery = self.gallery(2)
        started()
        gallery.save(folder)
        return self.read(folder)

    def read(self, folder):
        return index_rows(folder)


class SavePretrained(Replacing):
    """`save_pretrained` of a tiny model over a saved checkpoint of other weights (the processor saved beside it once),
    opened with `aptm.load_checkpoint`: transformers writes the files in place, so a save killed midway may leave a
    weights file cut short, which must be refused naming it."""

    @staticmethod
    def model(seed):
        import aptm
        from helpers.models import tiny_config

        model = aptm.APTMModel(tiny_config())
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        return model

    @staticmethod
    def summary(model):
        return {name: digest(tensor) for name, tensor in sorted(model.state_dict().items())}

    def prepare(self, folder):
        import aptm

        self.model(1).save_pretrained(folder)
        aptm.build_processor().save_pretrained(folder)

    def write(self, folder, started):
        model = self.model(2)
        summary = self.summary(model)  # before the start mark: the kills land in the save
        started()
        model.save_pretrained(folder)
        return summary

    def read(self, folder):
        import aptm

        return self.summary(aptm.load_checkpoint(folder, device="cpu")[0])


class FootageSources(Writer):
    """`FootageIndex.add_sources` of two copies of a generated 30-frame video of three people (tiny model, a shard per
    2 crops, the scene-difference detector); a killed run may leave a prefix of the shards (the batch in flight is
    lost), and the re-run skips what was indexed."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)

    def sources(self):
        """The checkpoint, the two videos and the empty scene, generated once (the scene's file last)."""
        from helpers.footage import pedestrian_video, save_tiny_checkpoint

        videos, scene = [self.data_dir / "walk.avi", self.data_dir / "again.avi"], self.data_dir / "scene.npy"
        if not scene.is_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            save_tiny_checkpoint(self.data_dir / "checkpoint")
            np.save(self.data_dir / "generating.npy", pedestrian_video(videos[0])[2])
            shutil.copy(videos[0], videos[1])
            os.replace(self.data_dir / "generating.npy", scene)
        return self.data_dir / "checkpoint", videos, np.load(scene)

    def write(self, folder, started):
        from aptm.footage import FootageIndex
        from helpers.footage import SceneDifference

        checkpoint, videos, scene = self.sources()
        started()
        index = FootageIndex(Path(folder) / "footage", checkpoint, batch_size=2)
        index.add_sources(videos, detector=SceneDifference(scene), progress=False)
        return self.read(folder)

    def read(self, folder):
        """Each stored crop's provenance and features, in index order (an empty list for an index not begun)."""
        from aptm.footage import FootageIndex

        if not (Path(folder) / "footage").is_dir():
            return {"crops": []}
        index = FootageIndex(Path(folder) / "footage")
        gallery = index.gallery
        return {"crops": [[record["source"], record["frame"], record["box"], record["track"],
                           digest(gallery.image_features[row], gallery.image_embeds[row])]
                          for row, record in enumerate(index.records)]}

    def allowed(self, state, reference, previous):
        count = len(state["crops"])
        if state["crops"] != reference["crops"][:count]:
            raise AssertionError("the footage index is not a prefix of the uninterrupted run's")
        return "complete" if count == len(reference["crops"]) else f"prefix of {count} crops"


class PreparedDataset(Writer):
    """`load_aptm_dataset("procedural", ...)` of 8 identities: generation, then the prepared-dataset cache."""

    def write(self, folder, started):
        from datasets import Image

        from datasets_scripts import load_aptm_dataset

        started()
        splits = load_aptm_dataset("procedural", data_dir=Path(folder) / "data", num_identities=8,
                                   views_per_identity=2, seed=0)
        summary = {}
        for name, split in splits.items():
            rows = split.cast_column("image", Image(decode=False)).to_list()
            for row in rows:  # the image as its bytes, whatever folder holds it (query rows have none)
                image = row["image"]
                if image is not None:
                    data = image["bytes"] or Path(image["path"]).read_bytes()
                    row["image"] = hashlib.sha256(data).hexdigest()[:16]
            summary[name] = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
        return summary

    def read(self, folder):
        return None  # the store is opened by the re-run (which must then find nothing half prepared)

    def allowed(self, state, reference, previous):
        return "re-run"


class Training(Writer):
    """`APTMTrainer` on the procedural set for `steps` steps with a checkpoint after each and the final save, resumed
    from the last complete checkpoint (as `--resume_from_checkpoint last`); the summary is the last complete
    checkpoint and the final saved weights."""

    def __init__(self, data_dir, steps=4):
        self.data_dir, self.steps = data_dir, steps

    def write(self, folder, started):
        from aptm.data.collator import APTMCollator
        from aptm.training import APTMTrainer, APTMTrainingArguments
        from aptm.training.trainer import last_complete_checkpoint
        from datasets_scripts import load_aptm_dataset
        from helpers.models import tiny_model

        import aptm

        data = load_aptm_dataset("procedural", data_dir=self.data_dir, num_identities=8, views_per_identity=2,
                                 seed=0)
        processor = aptm.build_processor()
        args = APTMTrainingArguments(output_dir=str(folder), learning_rate=1e-3, warmup_steps=0,
                                     max_steps=self.steps,
                                     per_device_train_batch_size=2, logging_steps=1, save_strategy="steps",
                                     save_steps=1, eval_strategy="no", load_best_model_at_end=False, seed=0,
                                     use_cpu=True, report_to="none", disable_tqdm=True, log_level="error")
        trainer = APTMTrainer(model=tiny_model(), args=args, train_dataset=data["train"],
                              data_collator=APTMCollator(processor, erasing_p=0.0))
        started()
        trainer.train(resume_from_checkpoint=last_complete_checkpoint(folder))
        trainer.save_model(str(Path(folder) / "final"))
        return self.read(folder)

    def read(self, folder):
        """The last complete checkpoint and the final save, if there is one (its `config.json`, written last, is
        there)."""
        from safetensors.torch import load_file

        from aptm.training.trainer import last_complete_checkpoint

        checkpoint = last_complete_checkpoint(folder)
        final = Path(folder) / "final"
        if not final.is_dir():
            return {"checkpoint": checkpoint and Path(checkpoint).name, "final": None}
        if not (final / "config.json").is_file():
            return {"checkpoint": checkpoint and Path(checkpoint).name, "final": "partial"}
        load_file(final / "model.safetensors")  # the saved weights open
        return {"checkpoint": checkpoint and Path(checkpoint).name, "final": str(final / "model.safetensors")}

    @staticmethod
    def same_weights(path, other):
        """Whether two saved weight files hold the same tensors, to float32 rounding: a training resumed on CPU is
        that close to the uninterrupted one, not bit-equal (see `tests/faults/test_resume.py`)."""
        from safetensors.torch import load_file

        first, second = load_file(path), load_file(other)
        return first.keys() == second.keys() and all(
            torch.allclose(first[name], second[name], rtol=0, atol=WEIGHT_TOLERANCE) for name in first)

    def same(self, rerun, reference):
        """The re-run ends at the uninterrupted run's last checkpoint with its final weights."""
        return (rerun["checkpoint"] == reference["checkpoint"] and rerun["final"] is not None
                and self.same_weights(rerun["final"], reference["final"]))

    def allowed(self, state, reference, previous):
        if state["final"] == "partial":
            raise AssertionError("the final save is there without its config.json: a partial save")
        if state["final"] is not None and not self.same_weights(state["final"], reference["final"]):
            raise AssertionError("the final weights differ from the uninterrupted run's")
        return f"{state['checkpoint'] or 'no checkpoint'}, {'final saved' if state['final'] else 'no final save'}"


CHILD_SECONDS = 600  # a writer that runs longer than this is taken as hung and stopped
WEIGHT_TOLERANCE = 1e-6  # of a resumed CPU training's weights (float32 rounding of a different reduction order)


def run_child(job):
    """Fork a child running `job(started)`; returns its pid and the read end of its pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        # torch's thread pool does not survive a fork: a parent that has run parallel ops would leave the child
        # waiting forever on the pool's lock at its first one (as DataLoader workers, run single-threaded)
        torch.set_num_threads(1)
        sys.stdout = sys.stderr  # what a writer prints (the Trainer's logs) stays out of the report
        os.close(read)
        pipe = os.fdopen(write, "wb", buffering=0)
        try:
            result = job(lambda: pipe.write(b"S"))
            pipe.write(b"R" + json.dumps(result).encode())
        except BaseException as error:  # noqa: BLE001  (sent to the parent as the outcome)
            pipe.write(b"E" + f"{type(error).__name__}: {error}".encode())
            traceback.print_exc()
        finally:
            os._exit(0)
    os.close(write)
    return pid, read


def collect(pid, read, head=b""):
    """What the child sent after its start mark (`head`: what was already read of it), as `("R", summary)` or
    `("E", message)`; `("K", None)` if killed."""
    chunks, deadline = [head], time.monotonic() + CHILD_SECONDS
    while True:
        if not select.select([read], [], [], max(0.0, deadline - time.monotonic()))[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"a writer process sent nothing for {CHILD_SECONDS} s: stopped (a hang, not a kill)")
        chunk = os.read(read, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    message = b"".join(chunks).lstrip(b"S")
    if message[:1] == b"R":
        try:
            return "R", json.loads(message[1:])
        except ValueError:  # killed while sending it
            return "K", None
    return ("E", message[1:].decode()) if message else ("K", None)


def opened(job):
    """`job`'s summary, or the message of the error it raised."""
    kind, value = collect(*run_child(job))
    return value if kind == "R" else f"refused: {value}"


def run_to_end(job):
    """`job`'s summary and the seconds from its start mark to its end."""
    pid, read = run_child(job)
    mark = os.read(read, 1)
    start = time.perf_counter()
    kind, value = collect(pid, read, mark)
    if kind != "R":
        raise RuntimeError(f"the writer failed: {value}")
    return value, time.perf_counter() - start


def killed_run(job, delay):
    """Start `job`, SIGKILL it `delay` seconds after it starts writing; whether it had finished first."""
    pid, read = run_child(job)
    mark = os.read(read, 1)
    if mark != b"S":
        raise RuntimeError(f"the writer failed before it started writing: {collect(pid, read, mark)}")
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    return collect(pid, read)[0] == "R"


def kill_writer(name, writer, kills, seed, workdir):
    """The report of `kills` kills of `writer` (see the module docstring)."""
    workdir = Path(workdir) / name
    shutil.rmtree(workdir, ignore_errors=True)
    reference_folder = workdir / "reference"
    reference_folder.mkdir(parents=True)
    run_to_end(lambda started: writer.prepare(reference_folder))
    previous = opened(lambda started: writer.read(reference_folder))
    reference, seconds = run_to_end(lambda started: writer.write(reference_folder, started))
    rng = np.random.default_rng(seed)
    report = {"writer": name, "seed": seed, "write_seconds": round(seconds, 3), "kills": []}
    for trial in range(kills):
        folder = workdir / f"kill-{trial:02d}"
        folder.mkdir()
        run_to_end(lambda started: writer.prepare(folder))
        delay = float(rng.uniform(0, 1.1 * seconds))
        finished = killed_run(lambda started: writer.write(folder, started), delay)
        state = opened(lambda started: writer.read(folder))
        if isinstance(state, str) and state.startswith("refused"):
            if str(folder) not in state:
                raise AssertionError(f"kill {trial} (delay {delay:.3f}s): the error does not name the folder: {state}")
            outcome = state
        else:
            outcome = writer.allowed(state, reference, previous)
        rerun = run_to_end(lambda started: writer.write(folder, started))[0]
        if not writer.same(rerun, reference):
            raise AssertionError(f"kill {trial} (delay {delay:.3f}s): the re-run differs from the uninterrupted run")
        report["kills"].append({"delay": round(delay, 4), "finished_before_kill": finished, "after_kill": outcome,
                                "rerun_identical": True})
        with open(workdir.parent / f"{name}.jsonl", "a") as log:  # each kill as it ends, for a run cut short
            log.write(json.dumps(report["kills"][-1]) + "\n")
        shutil.rmtree(folder)
    return report


def writers(workdir, training_steps=4):
    """The writers by name; the training ones keep their data in `workdir`."""
    return {"index_build": IndexBuild(), "index_save": IndexSave(), "save_pretrained": SavePretrained(),
            "footage": FootageSources(Path(workdir) / "footage-data"), "dataset": PreparedDataset(),
            "training": Training(Path(workdir) / "training-data", training_steps)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writer", choices=list(writers(".")), action="append")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--training_steps", type=int, default=4)
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()
    available = writers(args.workdir, args.training_steps)
    reports = [kill_writer(name, available[name], args.kills, args.seed, args.workdir)
               for name in args.writer or list(available)]
    print(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
