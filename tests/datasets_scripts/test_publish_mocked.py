"""Publishing with the Hub mocked at `HfApi`: the commits carry one Parquet shard per split under its Hub config, the
shards embed the image bytes, and the dataset card lists every config."""

import io
from types import SimpleNamespace
from unittest import mock

import fsspec
import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from datasets_scripts import load_aptm_dataset
from datasets_scripts.publish import hub_layout, push

SHA = "0" * 40


class RecordingHub:
    """Stands in for the Hub: remembers uploaded shards (read while their temporary files exist) and commits, and
    keeps committed files in an in-memory filesystem that `push_to_hub` reads the dataset card back from."""

    def __init__(self, repo_id):
        self.repo_id, self.shards, self.commits = repo_id, {}, []
        self.fs = fsspec.filesystem("memory")
        self.root = f"/datasets/{repo_id}@{SHA}"
        if self.fs.exists(self.root):  # the memory filesystem is shared by the whole process
            self.fs.rm(self.root, recursive=True)

    def repo_info(self, api, repo_id, **kwargs):
        assert repo_id == self.repo_id
        return SimpleNamespace(id=repo_id, sha=SHA)

    def preupload_lfs_files(self, api, repo_id, additions, **kwargs):
        for addition in additions:
            self.shards[addition.path_in_repo] = pq.read_table(addition.path_or_fileobj)

    def create_commit(self, api, repo_id, operations, **kwargs):
        self.commits.append(operations)
        for operation in operations:
            if isinstance(operation, CommitOperationAdd) and not operation.path_in_repo.endswith(".parquet"):
                self.fs.pipe(f"{self.root}/{operation.path_in_repo}", operation.path_or_fileobj)
        return SimpleNamespace(oid=SHA, commit_url="", pr_url=None)

    def filesystem(self, **kwargs):
        return fsspec.filesystem("memory")


@pytest.fixture
def hub():
    recording = RecordingHub("tester/procedural-mocked")
    with mock.patch.object(HfApi, "repo_info", autospec=True, side_effect=recording.repo_info), \
            mock.patch.object(HfApi, "preupload_lfs_files", autospec=True, side_effect=recording.preupload_lfs_files), \
            mock.patch.object(HfApi, "create_commit", autospec=True, side_effect=recording.create_commit), \
            mock.patch("datasets.arrow_dataset.HfFileSystem", side_effect=recording.filesystem):
        yield recording


def test_push_commits_one_config_per_kind_of_rows(tmp_path, hub):
    data = load_aptm_dataset("procedural", data_dir=tmp_path, num_identities=5, views_per_identity=1)
    pushed = push(data, hub.repo_id)
    assert pushed == {"pairs": ["train"], "gallery": ["validation", "test"], "queries": ["validation", "test"],
                      "attributes": ["validation", "test"]}
    assert len(hub.commits) == len(data)
    committed = [op.path_in_repo for ops in hub.commits for op in ops]
    for name in data:
        config, split = hub_layout(name)
        assert f"{config}/{split}-00000-of-00001.parquet" in committed
    assert committed.count("README.md") == len(data)
    card = hub.fs.cat(f"{hub.root}/README.md").decode()
    for config in pushed:
        assert f"config_name: {config}" in card


def test_shards_embed_the_images(tmp_path, hub):
    data = load_aptm_dataset("procedural", data_dir=tmp_path, num_identities=4, views_per_identity=2)
    push(data, hub.repo_id)
    gallery = hub.shards["gallery/test-00000-of-00001.parquet"]
    assert gallery.num_rows == data["test_gallery"].num_rows
    assert gallery.column_names == ["image", "person_id", "image_path"]
    image = gallery.column("image").to_pylist()[0]
    assert image["bytes"] == (tmp_path / data["test_gallery"][0]["image_path"]).read_bytes()
    assert hub.shards["queries/test-00000-of-00001.parquet"].column_names == ["caption", "person_id", "image_index"]
    pairs = hub.shards["pairs/train-00000-of-00001.parquet"]
    assert pairs.column("attribute_labels").to_pylist()[0] == data["train"][0]["attribute_labels"]
    assert all(len(row["bytes"]) > 0 for row in pairs.column("image").to_pylist())
    assert io.BytesIO(image["bytes"]).read(2) == b"\xff\xd8"  # JPEG, as generated
