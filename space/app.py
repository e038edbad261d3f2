"""Gradio Space: text-based person retrieval with APTM. Text search over a gallery (ITM re-ranking or dual-encoder
only), attribute recognition of an image, and search over images the user uploads.

This folder is the whole Space: it needs only public packages (`requirements.txt`), and the model brings its own code
(the `text-person-retrieval` and `pedestrian-attribute-recognition` pipelines travel with every APTM checkpoint).

    APTM_MODEL=my-name/aptm-tiny APTM_GALLERY=my-name/aptm-gallery python app.py      # 127.0.0.1:7860

* `APTM_MODEL`: a checkpoint's Hub id or folder.
* `APTM_GALLERY`: a Hub dataset id or a local path that `datasets.load_dataset` reads, with an `image` column and
  optional `person_id` and `caption` columns (`APTM_GALLERY_SPLIT` picks the split, default the first).
When either is missing or cannot be loaded, the page says so and what to set.

Settings a request chooses (dual encoder only, number of results) are arguments of that request, never stored on
shared objects, so concurrent users do not see each other's settings. Uploads: at most `MAX_UPLOAD_FILES` images, one
level of zip archives (no nested archives, members larger than `MAX_MEMBER_BYTES` refused), images of at most
`MAX_IMAGE_PIXELS` pixels (larger ones, decompression bombs included, refused before decoding); uploads are read in
memory, nothing is written; each problem is reported and the app keeps serving.
"""

import os
import sys
import warnings
import zipfile
from pathlib import Path

import gradio as gr
from datasets import load_dataset
from PIL import Image, UnidentifiedImageError
from transformers import pipeline

MAX_QUERY_CHARS = 300
MAX_UPLOAD_FILES = 200
MAX_MEMBER_BYTES = 20 * 2**20
MAX_IMAGE_PIXELS = 25_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
EXAMPLES = ["A man in a red t-shirt and black trousers.", "A woman with long hair wearing a yellow dress.",
            "A person in a blue jacket carrying a black backpack."]
RERANK_K = 16


class Demo:
    """The model's two pipelines and the default gallery, encoded once."""

    def __init__(self, model, gallery):
        self.search_pipeline = pipeline("text-person-retrieval", model=model, trust_remote_code=True)
        # the attribute pipeline of the same remote code, sharing the loaded model and processor
        pipelines = sys.modules[type(self.search_pipeline).__module__].PIPELINES
        self.attribute_pipeline = pipelines["pedestrian-attribute-recognition"](
            model=self.search_pipeline.model, processor=self.search_pipeline.processor,
            task="pedestrian-attribute-recognition")
        self.images = [image.convert("RGB") for image in gallery["image"]]
        self.labels = [f"person {pid}" for pid in gallery["person_id"]] if "person_id" in gallery.column_names \
            else [f"image {i}" for i in range(len(self.images))]
        self.gallery = self.search_pipeline.encode_gallery(self.images)

    def search(self, query, top, dual_encoder_only, gallery=None, images=None, labels=None):
        """Ranked gallery items `(image, caption)` for a query."""
        query = (query or "").strip()
        if not query:
            raise gr.Error("Type a description of the person to search for.")
        if len(query) > MAX_QUERY_CHARS:
            raise gr.Error(f"The query is longer than {MAX_QUERY_CHARS} characters.")
        gallery, images, labels = gallery or self.gallery, images or self.images, labels or self.labels
        results = self.search_pipeline(query, gallery=gallery, top_k=int(top), k=RERANK_K,
                                       fusion="cosine" if dual_encoder_only else "aptm")
        return [(images[r["index"]], f"#{rank + 1} {labels[r['index']]} score {r['score']:.3f}")
                for rank, r in enumerate(results)]

    def attributes(self, image, dual_encoder_only=False):
        """`{statement: probability}` for each attribute of the checkpoint's schema, the prompts scored by the ITM head
        or, with `dual_encoder_only`, by the IAC similarities."""
        if image is None:
            raise gr.Error("Upload or pick an image.")
        scoring = "contrastive" if dual_encoder_only else "itm"
        described = self.attribute_pipeline(image.convert("RGB"), scoring=scoring)
        return {f"{a['attribute']}: {a['statement']}": round(a["score"], 4) for a in described}

    def index_uploads(self, files):
        """Index uploaded images (or zips of images); returns (state, message)."""
        if not files:
            raise gr.Error("Upload images or a zip of images.")
        images, names, problems = [], [], []
        for path in [Path(f if isinstance(f, str) else f.name) for f in files]:
            for name, opener in upload_members(path, problems):
                if len(images) >= MAX_UPLOAD_FILES:
                    problems.append(f"only the first {MAX_UPLOAD_FILES} images are indexed")
                    break
                image = read_image(name, opener, problems)
                if image is not None:
                    images.append(image)
                    names.append(name)
        if not images:
            raise gr.Error("No readable image in the upload. " + "; ".join(problems[:5]))
        gallery = self.search_pipeline.encode_gallery(images)
        message = f"Indexed {len(images)} images." + (" Skipped: " + "; ".join(problems[:10]) if problems else "")
        return {"gallery": gallery, "images": images, "names": names}, message

    def search_uploads(self, query, top, state):
        if not state:
            raise gr.Error("Index some images first.")
        return self.search(query, top, False, state["gallery"], state["images"], state["names"])


def read_image(name, opener, problems):
    """The RGB image behind `opener`, or None with the reason appended to `problems` (not an image, truncated,
    too many pixels)."""
    try:
        with opener() as handle, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL warns past the limit, raises at 2x
            image = Image.open(handle)
            if image.width * image.height > MAX_IMAGE_PIXELS:  # checked on the header, before decoding
                raise Image.DecompressionBombError(f"{image.width}x{image.height}")
            image.load()
            return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        problems.append(f"{name}: more than {MAX_IMAGE_PIXELS:,} pixels")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        problems.append(f"{name}: not a readable image ({type(error).__name__})")
    return None


def upload_members(path, problems):
    """(name, opener) of each image in an uploaded file: the file itself, or the images inside a zip (read in
    memory, one level deep). Everything refused is appended to `problems` with its reason."""
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        for info in archive.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if name.lower().endswith(ARCHIVE_SUFFIXES):
                problems.append(f"{name}: archives inside archives are not indexed")
            elif not name.lower().endswith(IMAGE_SUFFIXES):
                problems.append(f"{name}: not an image file")
            elif info.file_size > MAX_MEMBER_BYTES:
                problems.append(f"{name}: larger than {MAX_MEMBER_BYTES // 2**20} MB uncompressed")
            else:
                yield name, lambda info=info: archive.open(info)
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
            query = gr.Textbox(label="Description", max_length=MAX_QUERY_CHARS, placeholder=EXAMPLES[0],
                               elem_id="query")
            with gr.Row():
                top = gr.Slider(1, 20, value=10, step=1, label="results")
                dual = gr.Checkbox(label="dual encoder only (no ITM re-ranking, faster)")
            button = gr.Button("Search", variant="primary", elem_id="search")
            results = gr.Gallery(label="ranked gallery", columns=10, height=420, elem_id="results")
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


def build_message_app(message):
    """A page that says what is wrong with the configuration (the Space keeps running and shows it)."""
    with gr.Blocks(title="APTM text-based person retrieval") as app:
        gr.Markdown(f"# APTM: find a person from a description\n\n**This Space is not configured.** {message}")
    return app


def load_gallery(source, split=None):
    """The gallery split of a Hub dataset id or local path (`datasets.load_dataset`), with an `image` column."""
    data = load_dataset(source)
    split = split or next(iter(data))
    if split not in data:
        raise ValueError(f"{source} has no split {split!r} (splits: {list(data)})")
    if "image" not in data[split].column_names:
        raise ValueError(f"{source} ({split}) has no `image` column (columns: {data[split].column_names})")
    return data[split]


def app_from_environment(environ=os.environ):
    """The demo for `APTM_MODEL` and `APTM_GALLERY`, or a page saying what to set or what failed."""
    missing = [name for name in ("APTM_MODEL", "APTM_GALLERY") if not environ.get(name)]
    if missing:
        return build_message_app(f"Set {' and '.join(f'`{n}`' for n in missing)} (the Space's variables): `APTM_MODEL`"
                                 " a checkpoint's Hub id, `APTM_GALLERY` a Hub dataset id with an `image` column.")
    try:
        gallery = load_gallery(environ["APTM_GALLERY"], environ.get("APTM_GALLERY_SPLIT"))
    except Exception as error:  # any failure to load is shown on the page
        return build_message_app(f"The gallery `{environ['APTM_GALLERY']}` could not be loaded: {error}")
    try:
        demo = Demo(environ["APTM_MODEL"], gallery)
    except Exception as error:  # any failure to load is shown on the page
        return build_message_app(f"The model `{environ['APTM_MODEL']}` could not be loaded: {error}")
    return build_demo(demo)


if __name__ == "__main__":
    app_from_environment().queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), max_file_size="20mb", share=False)
