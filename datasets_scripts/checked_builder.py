"""The base of the dataset builders: every record is read and checked before generation, so that `num_proc`
processes can check the images and write the rows with the same result as one."""

import shutil
from pathlib import Path

import datasets

from .common import ImageChecks, RecordChecker, positive_num_proc
from .files import write_json_atomically

SKIP_REPORT = "skipped_records.json"


class CheckedBuilder(datasets.GeneratorBasedBuilder):
    """A builder that reads and checks every record in `_split_generators`, in this process and in record order (so
    skips are counted and dense ids assigned as with one process), after checking all its images at once
    (`ImageChecks.verify`); `_generate_examples` then only writes the finished rows, so
    `download_and_prepare(num_proc=N)` runs both the image checks and the writing in N processes with the same
    result as one. `image_checks` may be shared by several builders of one data folder (each image decoded once).

    Subclasses implement `_read_splits()` (`{split: source}`), `_image_paths(sources)` (the images the sources
    name) and `_rows(source, split)` (the rows of one split, checking images with `self.checker.image_ok`)."""

    def __init__(self, *args, image_checks=None, **kwargs):
        super().__init__(*args, **kwargs)
        if image_checks is not None and (image_checks.root, image_checks.decode) != (
                Path(self.config.data_dir or "").resolve(), self.config.verify_images):
            raise ValueError(f"image_checks were made for {image_checks.root} (decode={image_checks.decode}), not for "
                             f"data_dir {self.config.data_dir} (verify_images={self.config.verify_images})")
        self.image_checks, self.num_proc = image_checks, 1

    def download_and_prepare(self, *args, num_proc=None, **kwargs):
        """`datasets.DatasetBuilder.download_and_prepare`; `num_proc` processes check the images and write the rows."""
        self.num_proc = 1 if num_proc is None else positive_num_proc(num_proc)
        return super().download_and_prepare(*args, num_proc=num_proc, **kwargs)

    def _download_and_prepare(self, dl_manager, *args, **kwargs):
        """Prepare into the temporary folder that `datasets` renames into place when preparation ends (so a killed
        preparation leaves no prepared dataset): first empty it of what a killed one left there, last write the
        skipped records beside the prepared files."""
        for leftover in Path(self._output_dir).iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        super()._download_and_prepare(dl_manager, *args, **kwargs)
        write_json_atomically(Path(self._output_dir) / SKIP_REPORT, self.checker.skipped, indent=1)

    def _split_generators(self, dl_manager):
        self.checker = RecordChecker(self.config.on_error)
        sources = self._read_splits()  # before the image checks: it says where to get the data when data_dir lacks it
        self.checker.images = self.image_checks or ImageChecks(self.config.data_dir, self.config.verify_images)
        self.checker.images.verify(self._image_paths(sources), self.num_proc)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"rows": list(self._rows(source, split))})
                for split, source in sources.items()]

    def _generate_examples(self, rows):
        yield from enumerate(rows)
