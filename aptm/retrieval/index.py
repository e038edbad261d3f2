"""A gallery index: an encoded gallery with person ids and paths, saved to and loaded from disk."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from retrieval_aptm import EncodedGallery


@dataclass
class GalleryIndex(EncodedGallery):
    """Encoded gallery (normalised projected features `[G, E]` for ITC, the image tokens `[G, 1 + N, C]` the fusion
    encoder attends to) with optional person ids and paths."""

    person_ids: torch.Tensor = None
    paths: list = field(default_factory=list)

    def save(self, folder):
        """Write `index.safetensors` and `index.json` (paths) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"image_features": self.image_features.contiguous(), "image_embeds": self.image_embeds.contiguous()}
        if self.person_ids is not None:
            tensors["person_ids"] = self.person_ids
        save_file(tensors, folder / "index.safetensors", metadata={"format": "pt"})
        (folder / "index.json").write_text(json.dumps({"size": len(self), "paths": list(self.paths)}))

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        for name in ("index.safetensors", "index.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing: not a saved gallery index")
        tensors = load_file(folder / "index.safetensors")
        meta = json.loads((folder / "index.json").read_text())
        if meta["size"] != len(tensors["image_features"]):
            raise ValueError(f"{folder}: index.json describes {meta['size']} images, the tensors {len(tensors['image_features'])}")
        return cls(tensors["image_features"], tensors["image_embeds"], tensors.get("person_ids"), meta["paths"])

    def faiss_dataset(self):
        """A `datasets.Dataset` of the features with an inner-product FAISS index on column `features` (needs
        faiss-cpu), for nearest-neighbour candidates (`get_nearest_examples_batch("features", text_features, k)`)."""
        import datasets
        import faiss

        dataset = datasets.Dataset.from_dict({"features": self.image_features.float().numpy()})
        dataset.add_faiss_index(column="features", metric_type=faiss.METRIC_INNER_PRODUCT)
        return dataset
