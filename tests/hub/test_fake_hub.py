"""Self-test of the stdlib fake Hub (`tests/_fake_hub.py`) that the push, dataset-publishing and README tests rely on:
`huggingface_hub` uploads (regular and LFS, nested paths, deletions) and downloads against it behave as on the Hub."""

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from helpers.fake_hub import serve

CLIENT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    api = HfApi()
    result = {"whoami": api.whoami()["name"]}
    api.create_repo("tester/demo")
    api.create_repo("tester/demo", exist_ok=True)
    api.upload_folder(folder_path=str(source), repo_id="tester/demo", commit_message="first")
    first_sha = api.model_info("tester/demo").sha
    api.upload_file(path_or_fileobj=b"second", path_in_repo="notes/second.txt", repo_id="tester/demo")
    result["sha_changed"] = api.model_info("tester/demo").sha != first_sha
    result["files"] = sorted(api.list_repo_files("tester/demo"))
    result["tree_top"] = sorted(entry.path for entry in api.list_repo_tree("tester/demo"))
    result["lfs"] = {entry.path: entry.lfs is not None for entry in api.list_repo_tree("tester/demo", recursive=True)
                     if hasattr(entry, "size")}
    result["exists"] = [api.file_exists("tester/demo", "weights.safetensors"), api.file_exists("tester/demo", "nope"),
                        api.repo_exists("tester/demo"), api.repo_exists("tester/absent")]
    result["download"] = Path(hf_hub_download("tester/demo", "weights.safetensors", cache_dir=out / "cache")).read_bytes().hex()
    snapshot = Path(snapshot_download("tester/demo", cache_dir=out / "cache"))
    result["snapshot"] = (snapshot / "sub" / "config.json").read_text()
    api.delete_file("notes/second.txt", repo_id="tester/demo")
    result["after_delete"] = sorted(api.list_repo_files("tester/demo"))
    for name, call in (("missing_repo", lambda: hf_hub_download("tester/absent", "x.json", cache_dir=out / "c2")),
                       ("missing_file", lambda: hf_hub_download("tester/demo", "absent.json", cache_dir=out / "c2"))):
        try:
            call()
            result[name] = "no error"
        except (RepositoryNotFoundError, EntryNotFoundError) as error:
            result[name] = type(error).__name__
    api.create_repo("tester/table", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\\n1,2\\n", path_in_repo="data/train.csv", repo_id="tester/table",
                    repo_type="dataset")
    result["dataset_files"] = api.list_repo_files("tester/table", repo_type="dataset")
    (out / "result.json").write_text(json.dumps(result))
""")


@pytest.fixture
def fake_hub(tmp_path):
    server, url = serve(0, tmp_path / "hub")
    yield url, tmp_path / "hub"
    server.shutdown()


def test_huggingface_hub_round_trip(fake_hub, tmp_path):
    url, root = fake_hub
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "README.md").write_text("# demo\n")
    (source / "sub" / "config.json").write_text('{"a": 1}')
    weights = bytes(range(256)) * 40
    (source / "weights.safetensors").write_bytes(weights)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=url, HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    run = subprocess.run([sys.executable, "-c", CLIENT, str(source), str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["whoami"] == "tester" and result["sha_changed"]
    assert result["files"] == ["README.md", "notes/second.txt", "sub/config.json", "weights.safetensors"]
    assert result["tree_top"] == ["README.md", "notes", "sub", "weights.safetensors"]
    assert result["lfs"] == {"README.md": False, "notes/second.txt": False, "sub/config.json": False,
                             "weights.safetensors": True}
    assert result["exists"] == [True, False, True, False]
    assert bytes.fromhex(result["download"]) == weights
    assert result["snapshot"] == '{"a": 1}'
    assert result["after_delete"] == ["README.md", "sub/config.json", "weights.safetensors"]
    assert result["missing_repo"] == "RepositoryNotFoundError" and result["missing_file"] == "RemoteEntryNotFoundError"
    assert result["dataset_files"] == ["data/train.csv"]
    stored = root / "models" / "tester" / "demo"
    assert (stored / "weights.safetensors").read_bytes() == weights and not (stored / "notes" / "second.txt").exists()


def test_lfs_upload_with_a_wrong_hash_is_refused(fake_hub):
    url, root = fake_hub
    request = urllib.request.Request(f"{url}/lfs-upload/{'0' * 64}", data=b"payload", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 400 and not (root / "lfs").exists()


def test_two_servers_are_independent(tmp_path):
    first, first_url = serve(0, tmp_path / "one")
    second, second_url = serve(0, tmp_path / "two")
    try:
        assert first_url != second_url
        (tmp_path / "one" / "models" / "tester" / "only-here").mkdir(parents=True)
        with urllib.request.urlopen(f"{first_url}/api/models/tester/only-here", timeout=10) as response:
            assert json.loads(response.read())["id"] == "tester/only-here"
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{second_url}/api/models/tester/only-here", timeout=10)
        assert error.value.code == 404 and error.value.headers["X-Error-Code"] == "RepoNotFound"
    finally:
        first.shutdown()
        second.shutdown()
