"""Procedural pedestrians: a deterministic, offline generator of stylised full-body people (Pillow + numpy) with
captions and MALS 27-attribute labels, the project's embedded default dataset.

Each identity has fixed attributes covering the MALS space (gender and age cues, hair length and colour, hat,
backpack, handbag, shoulder bag, sleeve length, lower-body length and type, upper and lower colours, shoes). Its views
vary pose (stride, arm swing, front/back/side), scale, position, background (muted street scenes: gradients, textures, clutter),
lighting, blur and JPEG quality, so identity must be recognised from attributes, not pixels. Each image gets two
captions from varied templates and synonyms that mention different subsets of attributes, and its label vector
(MALS coding: value v of attribute i means prompt 2i+v is true; -1 only where not visible: short hair under a hat).

`generate(data_dir, ...)` writes the real formats, so the real builders read it:
  * `imgs/<pid>_<view>.jpg` (128 x 384);
  * `procedural_{train,val,test}.json`: APTM retrieval json (train: one record per pair, with its `label`;
    val/test: one record per image with both captions), identities split disjointly;
  * `gene_attrs/procedural_attrs.json`: MALS pre-training json (train identities, `image_id` per image);
  * `procedural_attributes_{train,val,test}.json`: PA-100K-style `{image, label}` with the 27 MALS labels;
  * `manifest.json`: the generation settings and render version (a different request, or a folder drawn by an
    older version of this module, regenerates the folder).
"""

import inspect
import io
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from processing_aptm import MALS_ATTRIBUTES, MALS_LOWER_COLOURS, MALS_UPPER_COLOURS

from .common import process_map
from .files import write_json_atomically

WIDTH, HEIGHT = 128, 384
RENDER_VERSION = 2  # bumped when the drawing changes, so folders drawn by an older version are regenerated
PALETTE = {
    "black": (28, 28, 30), "white": (236, 236, 232), "red": (200, 32, 38), "purple": (118, 52, 150),
    "yellow": (236, 206, 42), "blue": (36, 72, 192), "green": (42, 142, 62), "gray": (128, 128, 128),
    "orange": (236, 128, 32), "brown": (122, 76, 40), "pink": (238, 150, 182),
}
UPPER_COLOURS, LOWER_COLOURS = MALS_UPPER_COLOURS, MALS_LOWER_COLOURS  # the colours the MALS labels name
NUM_ATTRIBUTES = len(MALS_ATTRIBUTES)  # each image is labelled in the MALS schema
UPPER_CHOICES = UPPER_COLOURS + ("orange", "brown")  # the last two are "other" for the upper-colour labels
LOWER_CHOICES = LOWER_COLOURS + ("red", "orange")  # "other" for the lower-colour labels
HAIR_COLOURS = {"black": (22, 20, 20), "brown": (92, 58, 32), "blond": (214, 180, 100), "gray": (160, 160, 160)}
SKIN_TONES = ((240, 200, 170), (222, 178, 140), (190, 140, 100), (140, 96, 64), (100, 66, 44))
BAG_COLOURS = ("black", "brown", "red", "blue", "white", "gray", "pink", "green", "yellow")


@dataclass(frozen=True)
class Identity:
    """The fixed attributes of one procedural person."""

    gender: str  # "man" | "woman"
    child: bool
    hair_long: bool
    hair_colour: str
    skin: int
    hat: str  # colour name or ""
    backpack: str
    handbag: str
    shoulder_bag: str
    upper_colour: str
    long_sleeves: bool
    lower_type: str  # "trousers" | "shorts" | "skirt" | "dress"
    lower_long: bool
    lower_colour: str
    shoes_colour: str
    build: float


def sample_identity(rng):
    """Draw an identity's attributes."""
    gender = "woman" if rng.random() < 0.5 else "man"
    child = rng.random() < 0.15
    lower_type = rng.choice(["trousers", "shorts", "skirt", "dress"], p=[0.5, 0.2, 0.15, 0.15] if gender == "woman"
                            else [0.72, 0.28, 0.0, 0.0])
    lower_long = {"trousers": True, "shorts": False}.get(lower_type, bool(rng.random() < 0.5))
    upper = str(rng.choice(UPPER_CHOICES))
    lower = upper if lower_type == "dress" else str(rng.choice(LOWER_CHOICES))  # a dress is both
    accessory = lambda p: str(rng.choice(BAG_COLOURS)) if rng.random() < p else ""  # noqa: E731
    return Identity(
        gender=gender, child=child, hair_long=bool(rng.random() < (0.7 if gender == "woman" else 0.1)),
        hair_colour=str(rng.choice(list(HAIR_COLOURS), p=[0.45, 0.3, 0.15, 0.1])), skin=int(rng.integers(len(SKIN_TONES))),
        hat=accessory(0.25), backpack=accessory(0.3), handbag=accessory(0.2 if gender == "woman" else 0.08),
        shoulder_bag=accessory(0.2), upper_colour=upper, long_sleeves=bool(rng.random() < 0.5), lower_type=lower_type,
        lower_long=lower_long, lower_colour=lower, shoes_colour=str(rng.choice(["black", "white", "brown", "gray", "red", "blue"])),
        build=float(rng.uniform(0.9, 1.1)),
    )


def attribute_labels(identity):
    """The 27 MALS labels of an identity (value v of attribute i: prompt 2i+v is true; -1 unknown)."""
    present = lambda flag: 0 if flag else 1  # noqa: E731  "with X" is label 0 in the MALS prompt order
    labels = [
        1 if identity.gender == "man" else 0,
        0 if identity.child else 1,
        -1 if identity.hat and not identity.hair_long else int(identity.hair_long),
        present(identity.hat), present(identity.backpack), present(identity.handbag), present(identity.shoulder_bag),
        0 if identity.long_sleeves else 1,
        0 if identity.lower_long else 1,
        0 if identity.lower_type in ("skirt", "dress") else 1,
    ]
    labels += [0 if identity.upper_colour == colour else 1 for colour in UPPER_COLOURS]
    labels += [0 if identity.lower_colour == colour else 1 for colour in LOWER_COLOURS]
    return labels


# --------------------------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------------------------


def _muted(rng, low, high, tint=18):
    """A street colour: a grey level in [low, high) with a small colour tint, so that clothes stand out from the scene
    as in real surveillance footage (a saturated scene in the clothes' palette would make colour attributes a
    segmentation problem)."""
    return np.clip(rng.integers(low, high) + rng.integers(-tint, tint + 1, 3), 0, 255)


def _background(rng):
    top, bottom = _muted(rng, 90, 210), _muted(rng, 70, 190)
    ramp = np.linspace(0, 1, HEIGHT)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).repeat(WIDTH, axis=1)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    ground = int(rng.uniform(0.82, 0.94) * HEIGHT)
    draw.rectangle([0, ground, WIDTH, HEIGHT], fill=tuple(int(v) for v in _muted(rng, 80, 160)))
    for _ in range(int(rng.integers(2, 7))):  # buildings, windows, poles, parked things
        x0, w = int(rng.integers(-20, WIDTH)), int(rng.integers(6, 60))
        y0 = int(rng.integers(0, ground - 20))
        colour = tuple(int(v) for v in _muted(rng, 60, 200, tint=30))
        if rng.random() < 0.3:
            draw.rectangle([x0, 0, x0 + 4, ground], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, min(ground, y0 + int(rng.integers(20, 160)))], fill=colour)
            for wy in range(y0 + 6, min(ground, y0 + 150), 18):
                draw.rectangle([x0 + 3, wy, x0 + max(4, w // 3), wy + 6], fill=tuple(max(0, c - 40) for c in colour))
    stripes = rng.normal(0, rng.uniform(2, 10), (HEIGHT, WIDTH, 1))
    textured = np.asarray(image, dtype=np.float32) + stripes
    return Image.fromarray(np.clip(textured, 0, 255).astype(np.uint8)), ground


def _limb(draw, start, angle, length, width, colour):
    """A limb as a thick segment from `start` at `angle` (radians from vertical); returns its end point."""
    end = (start[0] + math.sin(angle) * length, start[1] + math.cos(angle) * length)
    draw.line([start, end], fill=colour, width=max(2, int(width)))
    draw.ellipse([end[0] - width / 2, end[1] - width / 2, end[0] + width / 2, end[1] + width / 2], fill=colour)
    return end


def render(identity, rng):
    """Draw one view of `identity`. Returns the clean RGB image and the layout (boxes of the upper and lower clothes,
    used to check labels against pixels)."""
    image, ground = _background(rng)
    draw = ImageDraw.Draw(image)
    view = str(rng.choice(["front", "back", "side"], p=[0.45, 0.35, 0.2]))
    height = HEIGHT * (rng.uniform(0.56, 0.64) if identity.child else rng.uniform(0.74, 0.86))
    feet_y = min(HEIGHT - 4, ground + rng.uniform(0, 14))
    top = feet_y - height
    cx = WIDTH / 2 + rng.uniform(-10, 10)
    head_h = height * (0.17 if identity.child else 0.125)
    shoulder_w = height * (0.25 if identity.gender == "man" else 0.21) * identity.build * (0.6 if view == "side" else 1)
    neck_y, waist_y = top + head_h * 1.05, top + height * 0.48
    hip_w = shoulder_w * (0.78 if identity.gender == "man" else 0.92)
    skin, upper, lower = SKIN_TONES[identity.skin], PALETTE[identity.upper_colour], PALETTE[identity.lower_colour]
    hair = HAIR_COLOURS[identity.hair_colour]
    stride, swing = rng.uniform(-0.32, 0.32), rng.uniform(-0.4, 0.4)
    leg_len, limb_w = feet_y - waist_y, shoulder_w * 0.3

    def bag(colour):
        return PALETTE[colour]

    if identity.backpack and view != "back":  # seen from the front or side it peeks out behind the torso
        side = -1 if view == "side" else 1
        draw.rounded_rectangle([cx + side * shoulder_w * 0.35 - shoulder_w * 0.4, neck_y + 6,
                                cx + side * shoulder_w * 0.35 + shoulder_w * 0.62, waist_y - 4], 6,
                               fill=bag(identity.backpack))
    if identity.hair_long and view != "front":
        draw.rectangle([cx - shoulder_w * 0.32, top + head_h * 0.4, cx + shoulder_w * 0.32, neck_y + height * 0.14],
                       fill=hair)
    # legs and lower clothes
    hips = [(cx - hip_w * 0.25, waist_y), (cx + hip_w * 0.25, waist_y)]
    knee = leg_len * 0.5
    feet = []
    for index, hip in enumerate(hips):
        angle = stride if index == 0 else -stride
        covered = {"trousers": leg_len, "shorts": knee * 0.9}.get(identity.lower_type, 0)
        mid = _limb(draw, hip, angle, covered, limb_w * 1.2, lower) if covered else hip
        foot = _limb(draw, mid, angle, leg_len - covered, limb_w * 0.8, skin) if covered < leg_len else mid
        feet.append(foot)
        draw.ellipse([foot[0] - limb_w * 0.65, foot[1] - limb_w * 0.35, foot[0] + limb_w * 0.65, foot[1] + limb_w * 0.3],
                     fill=PALETTE[identity.shoes_colour])
    if identity.lower_type in ("skirt", "dress"):
        hem = waist_y + (leg_len * 0.9 if identity.lower_long else knee * 1.05)
        flare = hip_w * (0.75 if identity.lower_long else 0.68)
        draw.polygon([(cx - hip_w * 0.5, waist_y - 2), (cx + hip_w * 0.5, waist_y - 2), (cx + flare, hem),
                      (cx - flare, hem)], fill=lower)
    # a patch of the skirt, or of the left thigh, below where the hands and bags hang
    if identity.lower_type in ("skirt", "dress"):
        lower_box = (cx - hip_w * 0.25, waist_y + knee * 0.62, cx + hip_w * 0.25, waist_y + knee * 0.92)
    else:
        thigh = hips[0][0] + math.sin(stride) * knee * 0.7
        lower_box = (thigh - limb_w * 0.25, waist_y + knee * 0.6, thigh + limb_w * 0.25, waist_y + knee * 0.8)
    # torso and upper clothes
    draw.polygon([(cx - shoulder_w / 2, neck_y + 4), (cx + shoulder_w / 2, neck_y + 4), (cx + hip_w / 2, waist_y + 2),
                  (cx - hip_w / 2, waist_y + 2)], fill=upper)
    upper_box = (cx - hip_w * 0.3, neck_y + (waist_y - neck_y) * 0.3, cx + hip_w * 0.3, neck_y + (waist_y - neck_y) * 0.8)
    if identity.backpack and view == "back":
        draw.rounded_rectangle([cx - shoulder_w * 0.36, neck_y + 10, cx + shoulder_w * 0.36, waist_y - 8], 6,
                               fill=bag(identity.backpack))
        upper_box = (cx - shoulder_w * 0.48, neck_y + 8, cx - shoulder_w * 0.4, neck_y + 20)
    # arms
    arm_len = (waist_y - neck_y) * 1.15
    hands = []
    for index, sign in enumerate((-1, 1) if view != "side" else (1,)):
        shoulder = (cx + sign * shoulder_w * 0.47, neck_y + 8)
        angle = (swing if index == 0 else -swing) + sign * 0.12
        sleeve = arm_len if identity.long_sleeves else arm_len * 0.42
        elbow = _limb(draw, shoulder, angle, sleeve, limb_w, upper)
        hand = _limb(draw, elbow, angle, arm_len - sleeve, limb_w * 0.8, skin) if sleeve < arm_len else elbow
        draw.ellipse([hand[0] - limb_w * 0.45, hand[1] - limb_w * 0.45, hand[0] + limb_w * 0.45, hand[1] + limb_w * 0.45],
                     fill=skin)
        hands.append(hand)
    if identity.shoulder_bag:
        strap_end = (cx + hip_w * 0.55, waist_y + 8)
        draw.line([(cx - shoulder_w * 0.45, neck_y + 6), strap_end], fill=bag(identity.shoulder_bag), width=3)
        draw.rectangle([strap_end[0] - 10, strap_end[1] - 6, strap_end[0] + 8, strap_end[1] + 14],
                       fill=bag(identity.shoulder_bag))
    if identity.handbag:
        hand = hands[-1]
        draw.rounded_rectangle([hand[0] - 9, hand[1] + 2, hand[0] + 9, hand[1] + 18], 3, fill=bag(identity.handbag))
    # head, hair, hat
    head = [cx - head_h * 0.38, top, cx + head_h * 0.38, top + head_h]
    draw.rectangle([cx - head_h * 0.12, top + head_h * 0.8, cx + head_h * 0.12, neck_y + 6], fill=skin)
    draw.ellipse(head, fill=hair if view == "back" else skin)
    if view != "back":
        draw.chord([head[0] - 1, head[1] - 2, head[2] + 1, head[1] + head_h * 0.7], 180, 360, fill=hair)
        if identity.hair_long:
            for side in (-1, 1):
                draw.rectangle([cx + side * head_h * 0.38 - (head_h * 0.16 if side > 0 else 0), top + head_h * 0.3,
                                cx + side * head_h * 0.38 + (head_h * 0.16 if side < 0 else 0), neck_y + height * 0.1],
                               fill=hair)
        if view == "front":
            for side in (-1, 1):
                draw.ellipse([cx + side * head_h * 0.14 - 1.5, top + head_h * 0.5 - 1.5, cx + side * head_h * 0.14 + 1.5,
                              top + head_h * 0.5 + 1.5], fill=(30, 30, 30))
    if identity.hat:
        draw.rectangle([head[0] - head_h * 0.12, top + head_h * 0.18, head[2] + head_h * 0.12, top + head_h * 0.28],
                       fill=bag(identity.hat))
        draw.chord([head[0] + 1, top - head_h * 0.22, head[2] - 1, top + head_h * 0.5], 180, 360, fill=bag(identity.hat))
    return image, {"upper_box": upper_box, "lower_box": lower_box, "view": view}


def photometric(image, rng):
    """Per-view lighting, colour cast, blur, sensor noise and JPEG compression; returns JPEG bytes."""
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10, 3)
    pixels += rng.normal(0, rng.uniform(0, 6), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(40, 95)))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------------------------


def _phrases(identity, rng):
    pick = lambda options: str(rng.choice(options))  # noqa: E731
    if identity.child:
        subject = pick(["a boy", "a little boy", "a young boy", "a kid"] if identity.gender == "man"
                       else ["a girl", "a little girl", "a young girl", "a kid"])
    else:
        subject = pick(["a man", "a young man", "a male pedestrian", "a guy", "an adult man"] if identity.gender == "man"
                       else ["a woman", "a young woman", "a lady", "a female pedestrian", "an adult woman"])
    garment = pick(["jacket", "long-sleeved shirt", "sweater", "coat", "hoodie", "long-sleeved top"] if identity.long_sleeves
                   else ["t-shirt", "short-sleeved shirt", "short-sleeved top", "polo shirt", "tee"])
    phrases = {"subject": subject}
    if identity.lower_type == "dress":
        phrases["upper"] = f"a {identity.upper_colour} {'long' if identity.lower_long else 'short'} dress" + (
            " with long sleeves" if identity.long_sleeves else " with short sleeves")
    else:
        phrases["upper"] = f"a {identity.upper_colour} {garment}"
        lower = {"trousers": pick(["trousers", "pants", "jeans", "slacks"]), "shorts": pick(["shorts", "short pants"]),
                 "skirt": pick(["long skirt", "maxi skirt"] if identity.lower_long else ["short skirt", "miniskirt"])}
        phrases["lower"] = f"{identity.lower_colour} {lower[identity.lower_type]}"
        if identity.lower_type == "skirt":
            phrases["lower"] = "a " + phrases["lower"]
    phrases["hair"] = f"{'long' if identity.hair_long else 'short'} {identity.hair_colour} hair"
    phrases["shoes"] = f"{identity.shoes_colour} {pick(['shoes', 'sneakers', 'boots'])}"
    if identity.hat:
        phrases["hat"] = f"a {identity.hat} {pick(['hat', 'cap', 'beanie'])}"
    bags = [f"a {identity.backpack} backpack" if identity.backpack else "",
            f"a {identity.handbag} {pick(['handbag', 'purse'])} in hand" if identity.handbag else "",
            f"a {identity.shoulder_bag} {pick(['shoulder bag', 'messenger bag'])}" if identity.shoulder_bag else ""]
    if any(bags):
        phrases["bags"] = " and ".join(b for b in bags if b)
    return phrases


def _caption(identity, rng, keys):
    p = _phrases(identity, rng)
    clothes = " and ".join(p[k] for k in ("upper", "lower") if k in p and k in keys)
    extras = []
    if "hair" in keys:
        extras.append(f"has {p['hair']}")
    if "hat" in keys and "hat" in p:
        extras.append(f"wears {p['hat']}")
    if "shoes" in keys:
        extras.append(f"has {p['shoes']} on")
    if "bags" in keys and "bags" in p:
        extras.append(f"carries {p['bags']}")
    pronoun = "he" if identity.gender == "man" else "she"
    template = int(rng.integers(4))
    subject = p["subject"]
    if template == 0:
        text = f"{subject} wearing {clothes}"
        text += (", who " + ", ".join(extras[:-1]) + (" and " if len(extras) > 1 else "") + extras[-1]) if extras else ""
    elif template == 1:
        text = f"{subject} in {clothes}. {pronoun} " + (" and ".join(extras) if extras else "is walking")
    elif template == 2:
        text = f"the pedestrian is {subject} dressed in {clothes}" + ("; " + "; ".join(extras) if extras else "")
    else:
        text = f"{subject} walks down the street in {clothes}" + (". " + pronoun + " " + ", ".join(extras) if extras else "")
    text = re.sub(r"\ba ([aeiou])", r"an \1", text.strip() + ".")
    return ". ".join(sentence[0].upper() + sentence[1:] for sentence in text.split(". "))


def captions(identity, rng):
    """Two captions mentioning different subsets of the identity's attributes."""
    optional = ["hair", "hat", "shoes", "bags"]
    first = {"upper", "lower"} | set(rng.choice(optional, size=int(rng.integers(1, 3)), replace=False).tolist())
    second = {"upper", "lower"} | (set(optional) - first) if rng.random() < 0.6 else \
        {str(rng.choice(["upper", "lower"]))} | set(optional)
    return _caption(identity, rng, first), _caption(identity, rng, second)


# --------------------------------------------------------------------------------------------------------------------
# Dataset files
# --------------------------------------------------------------------------------------------------------------------


def draw_view(identity, seed, pid, view):
    """The JPEG bytes and two captions of one view, from its own random stream (the same in any process)."""
    rng = np.random.default_rng([seed, pid, view])
    image, _ = render(identity, rng)
    return photometric(image, rng), captions(identity, rng)


def generate(data_dir, num_identities=250, views_per_identity=6, seed=0, test_fraction=0.2, validation_fraction=0.1,
             progress=True, num_proc=1):
    """Write the procedural dataset to `data_dir` (see the module docstring), drawing the views in `num_proc`
    processes; returns the manifest. Same arguments, same bytes, whatever `num_proc`."""
    from tqdm.auto import tqdm

    if num_identities < 3 or views_per_identity < 1:
        raise ValueError("need at least 3 identities and 1 view per identity")
    data_dir = Path(data_dir)
    (data_dir / "manifest.json").unlink(missing_ok=True)  # written last: until then the folder is not a dataset
    (data_dir / "imgs").mkdir(parents=True, exist_ok=True)
    (data_dir / "gene_attrs").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    identities = [sample_identity(rng) for _ in range(num_identities)]
    num_test = max(1, round(num_identities * test_fraction))
    num_validation = max(1, round(num_identities * validation_fraction))
    split_of = ["test"] * num_test + ["val"] * num_validation + ["train"] * (num_identities - num_test - num_validation)
    split_of = [split_of[i] for i in np.random.default_rng(seed + 1).permutation(num_identities)]
    retrieval = {"train": [], "val": [], "test": []}
    attributes = {"train": [], "val": [], "test": []}
    mals = []
    views = [(identities[pid], seed, pid, view) for pid in range(num_identities) for view in range(views_per_identity)]
    drawn = process_map(draw_view, *zip(*views), num_proc=num_proc, chunksize=16)
    progress_bar = {"total": len(views), "desc": "procedural pedestrians", "disable": not progress}
    for (identity, _, pid, view), (jpeg, pair) in tqdm(zip(views, drawn), **progress_bar):
        labels = attribute_labels(identity)
        name = f"imgs/{pid:05d}_{view}.jpg"
        (data_dir / name).write_bytes(jpeg)
        split = split_of[pid]
        if split == "train":
            retrieval["train"] += [{"image": name, "caption": c, "image_id": pid, "label": labels} for c in pair]
            mals += [{"image": name, "caption": c, "image_id": f"{pid}_{view}", "label": labels} for c in pair]
        else:
            retrieval[split].append({"image": name, "caption": list(pair), "image_id": pid})
        attributes[split].append({"image": name, "label": labels})
    for split in ("train", "val", "test"):
        _write_json(data_dir / f"procedural_{split}.json", retrieval[split])
        _write_json(data_dir / f"procedural_attributes_{split}.json", attributes[split])
    _write_json(data_dir / "gene_attrs" / "procedural_attrs.json", mals)
    manifest = {"render_version": RENDER_VERSION, "num_identities": num_identities,
                "views_per_identity": views_per_identity, "seed": seed,
                "test_fraction": test_fraction, "validation_fraction": validation_fraction,
                "identities": [asdict(identity) for identity in identities]}
    _write_json(data_dir / "manifest.json", manifest)
    return manifest


def _write_json(path, value):
    write_json_atomically(path, value, indent=None, separators=(",", ":"))


def default_settings() -> dict:
    """The generation settings (`num_identities`, `views_per_identity`, `seed`, `test_fraction`,
    `validation_fraction`) with their defaults, as `generate`'s signature states them."""
    return {name: parameter.default for name, parameter in inspect.signature(generate).parameters.items()
            if name not in ("data_dir", "progress", "num_proc")}


def is_generated(data_dir, **settings):
    """Whether `data_dir` holds a procedural dataset generated with exactly these settings."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text())
    return manifest.get("render_version") == RENDER_VERSION and all(
        manifest.get(key) == value for key, value in settings.items())


def render_contact_sheet(data_dir, path, count=24, columns=8):
    """Save a PNG of `count` test images with their first caption, to look at the data."""
    data_dir = Path(data_dir)
    records = json.loads((data_dir / "procedural_test.json").read_text())[:count]
    cell_w, cell_h, text_h = WIDTH + 16, HEIGHT + 16, 96
    rows = (len(records) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * (cell_h + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=10)
    except TypeError:
        font = ImageFont.load_default()
    import textwrap

    for index, record in enumerate(records):
        x, y = (index % columns) * cell_w + 8, (index // columns) * (cell_h + text_h) + 8
        sheet.paste(Image.open(data_dir / record["image"]).convert("RGB"), (x, y))
        text = "\n".join(textwrap.wrap(f"#{record['image_id']}: {record['caption'][0]}", 26)[:7])
        draw.multiline_text((x, y + HEIGHT + 4), text, fill=(0, 0, 0), font=font, spacing=2)
    sheet.save(path)
    return path
