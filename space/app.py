"""Gradio Space: text-based person retrieval with APTM. Text search over a gallery (ITM re-ranking or dual-encoder
only), attribute recognition of an image, and search over a gallery the user uploads.

    APTM_CHECKPOINT=outputs/quickstart/checkpoint python space/app.py     # 127.0.0.1:7860

`APTM_CHECKPOINT` is a checkpoint folder or Hub id (default: the quickstart's checkpoint, `make quickstart`). Settings
a request chooses (dual encoder only, number of results) are arguments of that request, never stored on the shared
engine, so concurrent users do not see each other's settings.

Safety: queries are limited to `MAX_QUERY_CHARS`, uploads to `MAX_UPLOAD_FILES` images (or one zip) and
`max_file_size` at launch; results are returned as images (never paths), so nothing outside the gallery is served;
a corrupt image or a wrong file type gives a message and the demo keeps answering.
"""

import os
import zipfile
from pathlib import Path

import gradio as gr
from PIL import Image, UnidentifiedImageError

from aptm.factory import load_checkpoint
from aptm.retrieval import AttributeRecognizer, GalleryIndex, RetrievalEngine
from datasets_scripts import load_aptm_dataset
from datasets_scripts.common import fingerprint

QUICKSTART_CHECKPOINT = "outputs/quickstart/checkpoint"
MAX_QUERY_CHARS = 300
MAX_UPLOAD_FILES = 200
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EXAMPLES = ["A man in a red t-shirt and black trousers.", "A woman with long hair wearing a yellow dress.",
            "A person in a blue jacket carrying a black backpack."]


class Demo:
    """Model, processor and the default gallery (index cached in `cache_dir`)."""

    def __init__(self, checkpoint, gallery, cache_dir=None):
        self.model, self.processor = load_checkpoint(checkpoint)
        self.engine = RetrievalEngine(self.model, self.processor, k=16, batch_size=32, progress=False)
        self.recognizer = AttributeRecognizer(self.model, self.processor, batch_size=32, progress=False)
        self.images = [row["image"].convert("RGB") for row in gallery]
        self.person_ids = list(gallery["person_id"])
        cache = Path(cache_dir) if cache_dir else None
        if cache is not None and (cache / "index.safetensors").is_file():
            self.index = GalleryIndex.load(cache)
        else:
            self.index = self.engine.encode_gallery(self.images, person_ids=self.person_ids)
            if cache is not None:
                self.index.save(cache)

    def search(self, query, top, dual_encoder_only, index=None, images=None, labels=None):
        """Ranked gallery items `(image, caption)` for a query."""
        query = (query or "").strip()
        if not query:
            raise gr.Error("Type a description of the person to search for.")
        if len(query) > MAX_QUERY_CHARS:
            raise gr.Error(f"The query is longer than {MAX_QUERY_CHARS} characters.")
        index = index or self.index
        images = images or self.images
        result = self.engine.search(query, index, top=int(top), fusion="cosine" if dual_encoder_only else "aptm")[0]
        labels = labels or [f"person {pid}" for pid in self.person_ids]
        return [(images[i], f"#{rank + 1} {labels[i]} score {score:.3f}")
                for rank, (i, score) in enumerate(zip(result.indices, result.scores))]

    def attributes(self, image, dual_encoder_only=False):
        """`{statement: probability}` for each attribute of the processor's schema, the prompts scored by the ITM head
        or, with `dual_encoder_only`, by the IAC similarities."""
        if image is None:
            raise gr.Error("Upload or pick an image.")
        scoring = "contrastive" if dual_encoder_only else "itm"
        described = self.recognizer.describe([image.convert("RGB")], scoring=scoring)[0]
        return {f"{name}: {statement}": round(probability, 4) for name, statement, probability in described}

    def index_uploads(self, files):
        """Index uploaded images (or a zip of images); returns (state, message)."""
        if not files:
            raise gr.Error("Upload images or a zip of images.")
        images, names, problems = [], [], []
        for path in [Path(f if isinstance(f, str) else f.name) for f in files]:
            for name, opener in _members(path, problems):
                if len(images) >= MAX_UPLOAD_FILES:
                    problems.append(f"only the first {MAX_UPLOAD_FILES} images are indexed")
                    break
                try:
                    with opener() as handle:
                        image = Image.open(handle)
                        image.load()
                    images.append(image.convert("RGB"))
                    names.append(name)
                except (UnidentifiedImageError, OSError, ValueError) as error:
                    problems.append(f"{name}: not a readable image ({type(error).__name__})")
        if not images:
            raise gr.Error("No readable image in the upload. " + "; ".join(problems[:5]))
        index = self.engine.encode_gallery(images)
        message = f"Indexed {len(images)} images." + (" Skipped: " + "; ".join(problems[:10]) if problems else "")
        return {"index": index, "images": images, "names": names}, message

    def search_uploads(self, query, top, state):
        if not state:
            raise gr.Error("Index some images first.")
        return self.search(query, top, False, state["index"], state["images"], state["names"])


def _members(path, problems):
    """(name, opener) of each image in an uploaded file: the file itself or the images inside a zip."""
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        for info in archive.infolist():
            if info.is_dir():
                continue
            if not info.filename.lower().endswith(IMAGE_SUFFIXES):
                problems.append(f"{info.filename}: not an image file")
                continue
            yield info.filename, lambda info=info: archive.open(info)
        return
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        problems.append(f"{path.name}: not an image file (allowed: {', '.join(IMAGE_SUFFIXES)} or .zip)")
        return
    yield path.name, lambda: open(path, "rb")


def build_demo(demo):
    """The Blocks app with the `/search`, `/attributes`, `/index_uploads` and `/search_uploads` endpoints."""
    with gr.Blocks(title="APTM text-based person retrieval") as app:
        gr.Markdown("# APTM: find a person from a description\nText-to-person search with ITM re-ranking, "
                    "attribute recognition, and search over your own images.")
        with gr.Tab("Search"):
            query = gr.Textbox(label="Description", max_length=MAX_QUERY_CHARS, placeholder=EXAMPLES[0])
            with gr.Row():
                top = gr.Slider(1, 20, value=10, step=1, label="results")
                dual = gr.Checkbox(label="dual encoder only (no ITM re-ranking, faster)")
            button = gr.Button("Search", variant="primary")
            results = gr.Gallery(label="ranked gallery", columns=10, height=420)
            gr.Examples(EXAMPLES, inputs=query)
            button.click(demo.search, [query, top, dual], results, api_name="search")
        with gr.Tab("Attributes"):
            image = gr.Image(type="pil", label="pedestrian image")
            attribute_dual = gr.Checkbox(label="dual encoder only (prompt similarities, no ITM head)")
            attribute_button = gr.Button("Recognise attributes", variant="primary")
            labels = gr.Label(label="attributes", num_top_classes=30)
            gr.Examples([[img] for img in demo.images[:4]], inputs=image)
            attribute_button.click(demo.attributes, [image, attribute_dual], labels, api_name="attributes")
        with gr.Tab("Your gallery"):
            uploads = gr.File(file_count="multiple", label=f"images or a zip (at most {MAX_UPLOAD_FILES} images)")
            index_button = gr.Button("Index")
            status = gr.Markdown()
            state = gr.State()
            own_query = gr.Textbox(label="Description", max_length=MAX_QUERY_CHARS)
            own_top = gr.Slider(1, 20, value=5, step=1, label="results")
            own_button = gr.Button("Search my gallery", variant="primary")
            own_results = gr.Gallery(label="ranked uploads", columns=10, height=420)
            index_button.click(demo.index_uploads, uploads, [state, status], api_name="index_uploads")
            own_button.click(demo.search_uploads, [own_query, own_top, state], own_results, api_name="search_uploads")
    return app


def default_demo(checkpoint=None, data_dir="outputs/space-data"):
    """The demo on the procedural test gallery with `checkpoint` (a folder or Hub id; default: the quickstart's)."""
    if checkpoint is None:
        checkpoint = QUICKSTART_CHECKPOINT
        if not (Path(checkpoint) / "config.json").is_file():
            raise SystemExit(f"no checkpoint at {checkpoint}: set APTM_CHECKPOINT to a checkpoint folder or Hub id, "
                             "or run `make quickstart` first")
    data_dir = Path(data_dir)
    gallery = load_aptm_dataset("procedural", data_dir=data_dir, num_identities=60, views_per_identity=4)["test_gallery"]
    weights = sorted(Path(checkpoint).glob("*.safetensors"))
    cache = data_dir / f"index-{fingerprint(weights)}" if weights else None  # a new checkpoint gets a new index
    return Demo(checkpoint, gallery, cache_dir=cache)


if __name__ == "__main__":
    app = build_demo(default_demo(os.environ.get("APTM_CHECKPOINT")))
    app.queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), max_file_size="20mb", share=False)
