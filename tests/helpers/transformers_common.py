"""transformers' own common test suites (`ModelTesterMixin`, `ConfigTester`, `ProcessorTesterMixin`,
`ImageProcessingTestMixin`), taken from the source distribution of the installed transformers on PyPI.

The files are not part of the installed package. `common_tests()` downloads the sdist once
(`pip download --no-deps --no-binary :all: transformers==<installed version>`), extracts the four common test files
into a package under the cache folder (`$APTM_TEST_CACHE`, default `<repo>/.cache/transformers-common-tests`, ignored
by git), next to the stand-ins of `helpers/transformers_standins` for the modules the sdist lacks, and imports them.
`parameterized`, which the files import, is fetched the same way when it is not installed. Where PyPI cannot be
reached the calling test module is skipped with pip's message.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers

from helpers.paths import REPO

PACKAGE = "transformers_common_tests"
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py", "test_processing_common.py",
                "test_image_processing_common.py")
STANDINS = Path(__file__).parent / "transformers_standins"
# stand-in file -> where the common test files import it from (relative to the cache folder)
STANDIN_TARGETS = {
    "export.py": f"{PACKAGE}/exporters/test_export.py",
    "generation.py": f"{PACKAGE}/generation/test_utils.py",
    "configuration_utils.py": f"{PACKAGE}/utils/test_configuration_utils.py",
    "fetch_hub_objects.py": "utils/fetch_hub_objects_for_ci.py",  # test_processing_common appends <root>/utils
}
PARAMETERIZED = "parameterized==0.9.0"


class CommonTestsUnavailable(RuntimeError):
    """The sdist (or `parameterized`) could not be downloaded."""


def cache_root() -> Path:
    default = REPO / ".cache" / "transformers-common-tests"
    return Path(os.environ.get("APTM_TEST_CACHE", default)) / f"transformers-{transformers.__version__}"


def _pip_download(requirement: str, destination: Path, *options: str) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
               *options, "-d", str(destination), requirement]
    destination.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as error:
        raise CommonTestsUnavailable(f"`pip download {requirement}` timed out after 600 s") from error
    files = sorted(destination.iterdir())
    if result.returncode or not files:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise CommonTestsUnavailable(f"`pip download {requirement}` failed: {lines[-1] if lines else 'no file'}")
    return files[0]


def _build(root: Path) -> None:
    """Download and lay out the common test files in a temporary folder, then move it to `root` in one step."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        archive = _pip_download(f"transformers=={transformers.__version__}", staging / "download", "--no-binary",
                                ":all:")
        package = staging / PACKAGE
        package.mkdir()
        with tarfile.open(archive) as sdist:
            members = {Path(member.name).name: member for member in sdist.getmembers()
                       if Path(member.name).parent.name == "tests" and Path(member.name).name in COMMON_FILES}
            missing = sorted(set(COMMON_FILES) - set(members))
            if missing:
                raise CommonTestsUnavailable(f"{archive.name} has no tests/{', tests/'.join(missing)}")
            for name, member in members.items():
                (package / name).write_bytes(sdist.extractfile(member).read())
        for standin, target in STANDIN_TARGETS.items():
            target = staging / target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(STANDINS / standin, target)
        for folder in (package, *(path for path in package.iterdir() if path.is_dir())):
            (folder / "__init__.py").touch()
        shutil.rmtree(staging / "download")
        try:
            importlib.import_module("parameterized")
        except ImportError:
            _pip_download(PARAMETERIZED, staging / "wheels", "--only-binary", ":all:")
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def common_tests() -> SimpleNamespace:
    """The four common test modules (`modeling`, `configuration`, `processing`, `image_processing`); skips the calling
    test module when they cannot be downloaded."""
    root = cache_root()
    if not root.is_dir():
        try:
            _build(root)
        except CommonTestsUnavailable as error:
            pytest.skip(f"transformers' common tests unavailable (PyPI unreachable?): {error}",
                        allow_module_level=True)
        except OSError:  # another process built it first
            if not root.is_dir():
                raise
    wheels = root / "wheels"
    for path in [*sorted(wheels.glob("*.whl")), root] if wheels.is_dir() else [root]:
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    with warnings.catch_warnings():  # marks of transformers' own pytest configuration (flash_attn_test, ...)
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return SimpleNamespace(**{
            name: importlib.import_module(f"{PACKAGE}.test_{name}_common")
            for name in ("modeling", "configuration", "processing", "image_processing")
        })
