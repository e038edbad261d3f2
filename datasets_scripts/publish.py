"""Publish a built dataset as Parquet with the images embedded (not as paths, which break once the files move):
locally, or to the Hub with `DatasetDict.push_to_hub` (which embeds them too). Only for data whose license allows
redistribution: CUHK-PEDES, ICFG-PEDES and RSTPReid do not; the procedural set does."""

from pathlib import Path

from datasets.table import embed_table_storage


def to_parquet(dataset_dict, folder):
    """Write `<split>.parquet` files with embedded image bytes into `folder`; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, dataset in dataset_dict.items():
        embedded = dataset.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
        path = folder / f"{split}.parquet"
        embedded.to_parquet(str(path))
        paths.append(path)
    return paths


def hub_layout(name):
    """Split key of `load_aptm_dataset` -> (Hub config, split): `train` -> (pairs, train), `test_gallery` ->
    (gallery, test), `attributes_test` -> (attributes, test); a Hub config holds splits with the same features."""
    if name == "train":
        return "pairs", "train"
    if name.startswith("attributes_"):
        return "attributes", name.split("_", 1)[1]
    if name.endswith(("_gallery", "_queries")):
        split, config = name.rsplit("_", 1)
        return config, split
    return "default", name


def push(dataset_dict, repo_id, private=False, token=None):
    """Push every split as Parquet shards (images embedded) to the dataset repo `repo_id`, one Hub config per kind of
    rows (`load_dataset(repo_id, "gallery")["test"]`). Returns the configs pushed."""
    pushed = {}
    for name, dataset in dataset_dict.items():
        config, split = hub_layout(name)
        dataset.push_to_hub(repo_id, config_name=config, split=split, private=private, token=token)
        pushed.setdefault(config, []).append(split)
    return pushed
