"""Copy the package's standalone modules into the Hub artefact folders of this checkout, so that they run from their
own files as they do on the Hub: `space/aptm_parts/` (image reading and the footage modules) and each metric's
`aptm_metrics.py`. Publishing (`publish_space.py`, `publish_metric.py`) copies them too; `make install` runs this.

    python scripts/copy_library_files.py
"""

from pathlib import Path

from aptm.hub import METRIC_LIBRARY_FILES, SPACE_LIBRARY_FILES, copy_library_files

REPO = Path(__file__).resolve().parents[1]


def main() -> list[Path]:
    paths = copy_library_files(REPO / "space", SPACE_LIBRARY_FILES)
    for folder in sorted((REPO / "metrics").iterdir()):
        if folder.is_dir():
            paths += copy_library_files(folder, METRIC_LIBRARY_FILES)
    return paths


if __name__ == "__main__":
    print(f"{len(main())} package modules copied into space/ and metrics/")
