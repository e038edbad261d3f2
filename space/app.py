"""Gradio Space: text-based person retrieval with APTM. Text search over a gallery (ITM re-ranking or dual-encoder
only), attribute recognition of an image, search over images the user uploads, and search over the people of a video
the user uploads (by a description, an example image of the person, or both).

This folder is the whole Space: it needs only public packages (`requirements.txt`), the model brings its own code
(the `text-person-retrieval` and `pedestrian-attribute-recognition` pipelines travel with every APTM checkpoint), and
`aptm_parts/` holds the package's image reader and footage modules (copies of `aptm/images.py` and `aptm/footage/`,
written when the Space is published, and in a checkout by `make install`).

    APTM_MODEL=my-name/aptm-tiny APTM_GALLERY=my-name/aptm-gallery python app.py      # 127.0.0.1:7860

* `APTM_MODEL`: a checkpoint's Hub id or folder.
* `APTM_GALLERY`: a Hub dataset id or a local path that `datasets.load_dataset` reads, with an `image` column and
  optional `person_id` and `caption` columns (`APTM_GALLERY_SPLIT` picks the split, default the first).
When either is missing or cannot be loaded, the page says so and what to set.

Settings a request chooses (dual encoder only, number of results) are arguments of that request, never stored on
shared objects, so concurrent users do not see each other's settings. Uploads are read by the package's
`SourceReader`, as in the footage tab and `scripts/index_gallery.py` (EXIF orientation applied, the same image
suffixes): at most `MAX_UPLOAD_FILES` images, one level of zip or tar archives (members larger than
`MAX_MEMBER_BYTES` refused), images of at most `MAX_IMAGE_PIXELS` pixels (larger ones, decompression bombs included,
refused before decoding); nothing is extracted; each problem is reported and the app keeps serving.

Result images are served from files of their own (`ResultFiles`, in gradio's temporary folder), named by their pixels
and written once, whole (under a temporary name renamed into place), so a client never downloads a file that another
request is writing (gradio's cache writes a returned PIL image in place under its content hash: concurrent requests
returning the same image served truncated or empty files).

Footage: an uploaded video (at most 20 MB, frames of at most `MAX_IMAGE_PIXELS` pixels) is read every Nth frame, at
most `MAX_VIDEO_FRAMES` sampled frames (the rest of a longer video is left out, and the message says so); people are
found with OpenCV's HOG detector (at most `MAX_VIDEO_CROPS` sightings), followed from frame to frame into tracks (one
per person; static ones, such as a parked van, are left out of results) and a few crops of each are encoded, as
`aptm.footage.FootageIndex` does. A search shows one card per person (their best-matching moment and time span) and
a timeline of when they appear. The videos indexed stay in the
session that indexed them (gradio's per-user state, at most `MAX_SESSION_VIDEOS`, the oldest dropped) and can be
chosen again there; no index is read from disk (an index built by `scripts/index_gallery.py` is searched with
`scripts/search.py` or `aptm.footage.FootageIndex`).
"""

import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from datasets import load_dataset
from PIL import Image
from transformers import pipeline

from aptm_parts.footage.crops import people_in
from aptm_parts.footage.detection import HOGPersonDetector
from aptm_parts.footage.labels import span
from aptm_parts.footage.ranking import gallery_rows, rank_tracks, track_gallery
from aptm_parts.footage.sources import SkipLog, SourceReader
from aptm_parts.footage.timeline import timeline_image
from aptm_parts.footage.tracking import Tracker
from aptm_parts.images import ARCHIVE_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, SourceError, kind_of

MAX_QUERY_CHARS = 300
MAX_UPLOAD_FILES = 200
MAX_MEMBER_BYTES = 20 * 2**20
MAX_IMAGE_PIXELS = 25_000_000
EXAMPLES = ["A man in a red t-shirt and black trousers.", "A woman with long hair wearing a yellow dress.",
            "A person in a blue jacket carrying a black backpack."]
RERANK_K = 16
MAX_VIDEO_FRAMES = 60
MAX_VIDEO_CROPS = 300
MAX_SESSION_VIDEOS = 4
THUMBNAIL_SIZE = 256
CROPS_PER_TRACK = 3  # as `FootageIndex.add_sources`
VIDEO_NOTES = {"truncated video": "the video stops before its announced end: only its start was indexed",
               "video longer than the limit": "the video is longer than the limit: only its first {frames} sampled "
                                              "frames were read"}


def checked_query(query, required=True):
    """The stripped description, or a `gr.Error` when it is missing (and `required`) or too long."""
    query = (query or "").strip()
    if required and not query:
        raise gr.Error("Type a description of the person to search for.")
    if len(query) > MAX_QUERY_CHARS:
        raise gr.Error(f"The query is longer than {MAX_QUERY_CHARS} characters.")
    return query


class ResultFiles:
    """The files result images are served from: an image's file is named by a hash of its pixels and written once,
    whole (a temporary file renamed into place), so a file being served is never rewritten."""

    def __init__(self):
        Path(gr.utils.get_upload_folder()).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="aptm-results-", dir=gr.utils.get_upload_folder()))

    def path(self, image):
        """The file of `image` (written now if it is not yet)."""
        digest = hashlib.sha256(f"{image.mode} {image.size}".encode() + image.tobytes()).hexdigest()[:32]
        path = self.folder / f"{digest}.webp"
        if not path.is_file():
            descriptor, partial = tempfile.mkstemp(dir=self.folder, prefix=f".{digest}.", suffix=".partial")
            with os.fdopen(descriptor, "wb") as file:
                image.save(file, format="WEBP")
            os.replace(partial, path)
        return str(path)

    def served(self, handler):
        """`handler` returning `(image, caption)` pairs, or a tuple of those pairs and further outputs (such as a
        picture), returning the pairs as `(image file, caption)` and each further picture as its file instead."""

        @functools.wraps(handler)
        def serving_files(*args):
            result = handler(*args)
            pairs, *more = result if isinstance(result, tuple) else (result,)
            files = [(self.path(image), label) for image, label in pairs]
            more = [self.path(value) if isinstance(value, Image.Image) else value for value in more]
            return (files, *more) if more else files

        return serving_files


class Demo:
    """The model's two pipelines and the default gallery, encoded once."""

    def __init__(self, model, gallery):
        self.search_pipeline = pipeline("text-person-retrieval", model=model, trust_remote_code=True)
        # the model's remote code: the attribute pipeline (sharing the loaded model and processor) and the search
        self.remote = sys.modules[type(self.search_pipeline).__module__]
        self.attribute_pipeline = self.remote.PIPELINES["pedestrian-attribute-recognition"](
            model=self.search_pipeline.model, processor=self.search_pipeline.processor,
            task="pedestrian-attribute-recognition")
        self.images = [image.convert("RGB") for image in gallery["image"]]
        self.labels = [f"person {pid}" for pid in gallery["person_id"]] if "person_id" in gallery.column_names \
            else [f"image {i}" for i in range(len(self.images))]
        self.gallery = self.search_pipeline.encode_gallery(self.images)

    def search(self, query, top, dual_encoder_only, gallery=None, images=None, labels=None):
        """Ranked gallery items `(image, caption)` for a query."""
        query = checked_query(query)
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
        """Index uploaded images (or zip/tar archives of images); returns (state, message)."""
        if not files:
            raise gr.Error("Upload images or a zip of images.")
        reader = SourceReader(max_pixels=MAX_IMAGE_PIXELS, max_member_bytes=MAX_MEMBER_BYTES, progress=False,
                              videos=False)
        skips, images, names = SkipLog(), [], []
        for path in [Path(f if isinstance(f, str) else f.name) for f in files]:
            try:
                if kind_of(path.name) not in ("image", "archive"):
                    raise SourceError(path, "not an image file",
                                      f"allowed: {', '.join(IMAGE_SUFFIXES + ARCHIVE_SUFFIXES)}")
                for picture in reader.read(path, set(), skips):
                    if len(images) == MAX_UPLOAD_FILES:
                        skips.skip(f"only the first {MAX_UPLOAD_FILES} images are indexed", path.name)
                        break
                    images.append(Image.fromarray(picture.image))
                    names.append(picture.member or path.name)
            except SourceError as error:
                skips.skip_error(error)
        problems = [upload_problem(*entry) for entry in skips.entries]
        if not images:
            raise gr.Error("No readable image in the upload. " + "; ".join(problems[:5]))
        gallery = self.search_pipeline.encode_gallery(images)
        message = f"Indexed {len(images)} images." + (" Skipped: " + "; ".join(problems[:10]) if problems else "")
        return {"gallery": gallery, "images": images, "names": names}, message

    def search_uploads(self, query, top, state):
        if not state:
            raise gr.Error("Index some images first.")
        return self.search(query, top, False, state["gallery"], state["images"], state["names"])

    def index_video(self, video, frame_step, videos):
        """Find and follow the people of an uploaded video, one frame in `frame_step`, and encode a few crops of each.
        Returns the session's videos (`videos`, a new dict: name -> encoded crops and tracks, the crops' thumbnails
        and times, the tracks' spans, with this one added last), a message, and the choice of videos with this one
        chosen."""
        if not video:
            raise gr.Error("Upload a video.")
        path = Path(video if isinstance(video, str) else video.name)
        if kind_of(path.name) != "video":
            raise gr.Error(f"{path.name} is not a video (allowed: {', '.join(VIDEO_SUFFIXES)}).")
        reader = SourceReader(frame_step=int(frame_step), max_pixels=MAX_IMAGE_PIXELS, max_frames=MAX_VIDEO_FRAMES,
                              progress=False)
        skips, tracker, tracks, frames, found, kept = SkipLog(), Tracker(), [], 0, 0, 0
        try:
            detector = HOGPersonDetector()
            for picture in reader.read(path, set(), skips):
                frames += 1
                crops = people_in(picture, detector)
                found += len(crops)
                crops = crops[: max(0, MAX_VIDEO_CROPS - kept)]
                kept += len(crops)
                tracks += tracker.update(crops)
        except SourceError as error:
            raise gr.Error(f"{path.name}: {error.reason}" + (f" ({error.detail})." if error.detail else "."))
        except ImportError as error:  # OpenCV missing or 5.x
            raise gr.Error(f"Videos cannot be read here: {error}")
        tracks += tracker.finish()
        if not found:
            raise gr.Error(f"No person was found in the {frames} frames read from {path.name} (one in "
                           f"{int(frame_step)}). Try a smaller frame step, or a video where people look larger.")
        notes = [VIDEO_NOTES.get(reason, reason).format(frames=MAX_VIDEO_FRAMES) for reason in skips.counts]
        if found > kept:
            notes.append(f"only the first {kept} of {found} sightings of people are indexed")
        crops, rows, best, static = [], [], [], []
        for track in tracks:
            static.append(track.is_static())
            chosen = track.chosen(1 if static[-1] else CROPS_PER_TRACK)
            rows.append(list(range(len(crops), len(crops) + len(chosen))))
            best.append(rows[-1][chosen.index(track.best())])
            crops += [track.crops[index] for index in chosen]
        gallery = self.search_pipeline.encode_gallery([crop.image for crop in crops])
        encoded = {"gallery": gallery, "tracks": track_gallery(gallery, rows, best), "crops": rows, "static": static,
                   "spans": [(track.start, track.end) for track in tracks],
                   "thumbnails": [crop.thumbnail(THUMBNAIL_SIZE) for crop in crops],
                   "times": [crop.timestamp for crop in crops]}
        kept_videos = [(name, value) for name, value in (videos or {}).items() if name != path.name]
        videos = dict(kept_videos[max(0, len(kept_videos) - MAX_SESSION_VIDEOS + 1):] + [(path.name, encoded)])
        message = (f"Indexed {len(tracks)} people ({sum(static)} static, left out of results; {kept} sightings) in "
                   f"{frames} frames of {path.name} (one frame in {int(frame_step)}).")
        message += "".join(f" Note: {note}." for note in notes)
        return videos, message, gr.Dropdown(choices=list(videos), value=path.name)

    def search_footage(self, query, example, image_weight, top, choice, videos):
        """One card `(thumbnail of the best-matching moment, caption)` per person of the video `choice` of this
        session for a description, an example image of the person, or both (`(1 - image_weight) x text +
        image_weight x image`, as `aptm.footage`), best first, and the timeline of when they appear."""
        if not videos or choice not in videos:
            raise gr.Error("Index a video first, or choose one indexed in this session.")
        query = checked_query(query, required=example is None)
        video = videos[choice]
        moving = [number for number, static in enumerate(video["static"]) if not static]
        if not moving:
            raise gr.Error(f"Every person found in {choice} stands still (static tracks are left out).")
        search = self.remote.TextPersonSearch(self.search_pipeline.model, self.search_pipeline.processor,
                                              progress=False)
        found = rank_tracks(search, gallery_rows(video["tracks"], moving), video["gallery"],
                            [video["crops"][number] for number in moving],
                            query or None, None if example is None else example.convert("RGB"), int(top),
                            float(image_weight))
        cards, people = [], []
        for rank, (index, score, moment, _) in enumerate(found):
            start, end = video["spans"][moving[index]]
            cards.append((video["thumbnails"][moment], f"#{rank + 1} {span(start, end)} score {score:.3f}"))
            people.append(SimpleNamespace(rank=rank + 1, score=score, source=choice, start=start, end=end,
                                          moment=SimpleNamespace(timestamp=video["times"][moment])))
        return cards, timeline_image(people, query or "the example image")


def upload_problem(name, reason, detail):
    """What a person reads about one skipped upload: the file's name (or the archive member's), without the server's
    temporary folder, and why it was skipped."""
    archive, _, member = name.partition("::")
    return f"{member or Path(archive).name}: {reason}" + (f" ({detail})" if detail else "")


def example_from_results(results, selected: gr.SelectData):
    """The crop a user clicked among the ranked `results` (`(image, caption)` pairs), as the example image: query by
    example within the video."""
    return results[selected.index][0]


def build_demo(demo):
    """The Blocks app with the `/search`, `/attributes`, `/index_uploads`, `/search_uploads`, `/index_video` and
    `/search_footage` endpoints; their result images are served from `ResultFiles`."""
    files = ResultFiles()
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
            button.click(files.served(demo.search), [query, top, dual], results, api_name="search")
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
            own_button.click(files.served(demo.search_uploads), [own_query, own_top, state], own_results, api_name="search_uploads")
        with gr.Tab("Footage"):
            gr.Markdown(f"Upload a short video (at most 20 MB; {MAX_VIDEO_FRAMES} frames are read at most): people are "
                        "found every Nth frame and followed from frame to frame, one result per person with their "
                        "time span. Search them by a description, an "
                        "example image of the person (click a result to use it), or both. Videos indexed stay in "
                        "this session only.")
            with gr.Row():
                video = gr.File(label="video", file_types=list(VIDEO_SUFFIXES), height=160, elem_id="video", scale=2)
                with gr.Column():
                    frame_step = gr.Slider(1, 50, value=10, step=1, label="look for people every Nth frame")
                    video_button = gr.Button("Index video", elem_id="index-video")
            video_status = gr.Markdown(elem_id="video-status")
            videos = gr.State()
            with gr.Row():
                with gr.Column(scale=2):
                    choice = gr.Dropdown([], label="video to search (indexed in this session)", elem_id="video-choice")
                    footage_query = gr.Textbox(label="Description (optional with an example image)",
                                               max_length=MAX_QUERY_CHARS, placeholder=EXAMPLES[2],
                                               elem_id="footage-query")
                    with gr.Row():
                        image_weight = gr.Slider(0, 1, value=0.5, step=0.05,
                                                 label="weight of the example image (with both)")
                        footage_top = gr.Slider(1, 20, value=8, step=1, label="results")
                example = gr.Image(type="pil", label="example image of the person (optional; or click a result)",
                                   height=220, elem_id="footage-example")
            footage_button = gr.Button("Search the video", variant="primary", elem_id="search-footage")
            footage_results = gr.Gallery(label="people found: best moment, time span, score", columns=6,
                                         height=480, object_fit="contain", type="pil", elem_id="footage-results")
            footage_timeline = gr.Image(label="when they appear (best moment: black tick)", type="pil",
                                        interactive=False, elem_id="footage-timeline")
            video_button.click(demo.index_video, [video, frame_step, videos], [videos, video_status, choice],
                               api_name="index_video")
            footage_button.click(files.served(demo.search_footage),
                                 [footage_query, example, image_weight, footage_top, choice, videos],
                                 [footage_results, footage_timeline], api_name="search_footage")
            footage_results.select(example_from_results, footage_results, example, api_name=False)
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
