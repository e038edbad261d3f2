"""Pictures people look at: ranked-gallery grids (true matches framed green, others red) and training curves."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

GREEN, RED, WHITE, BLACK = (30, 160, 60), (210, 40, 40), (255, 255, 255), (20, 20, 20)


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def ranked_gallery_grid(results: Sequence, gallery_images, path: str | Path, query_ids: Sequence[int] | None = None,
                        gallery_ids: Sequence[int] | None = None, top: int = 10, thumb_size: tuple[int, int] = (64, 192),
                        text_width: int = 220, labels: Sequence[Sequence[str]] | None = None) -> str | Path:
    """Save a PNG with one row per query: the wrapped query text, then its `top` gallery images best first, each
    framed green when it shows the query's person and red otherwise (no frame without ids), with rank and score.

    `results` are `SearchResult`s; `gallery_images` is indexable by gallery index (PIL images or arrays); `labels`,
    optional, holds per query a line of text for each of its results (e.g. a time stamp), written under the score."""
    width, height = thumb_size
    border, pad, caption = 4, 6, 16 if labels is None else 30
    cell_w, cell_h = width + 2 * border + pad, height + 2 * border + caption + pad
    canvas = Image.new("RGB", (text_width + cell_w * top + pad, cell_h * len(results) + pad), WHITE)
    draw = ImageDraw.Draw(canvas)
    font, small = _font(13), _font(11)
    for row, result in enumerate(results):
        y = pad + row * cell_h
        lines = textwrap.wrap(result.query, width=30)[: (cell_h - pad) // 16]
        draw.multiline_text((pad, y), "\n".join(lines), fill=BLACK, font=font, spacing=3)
        for rank, (index, score) in enumerate(zip(result.indices[:top], result.scores[:top])):
            x = text_width + rank * cell_w
            image = gallery_images[index]
            image = image if isinstance(image, Image.Image) else Image.fromarray(image)
            thumb = image.convert("RGB").resize((width, height), Image.BICUBIC)
            if query_ids is not None and gallery_ids is not None:
                colour = GREEN if gallery_ids[index] == query_ids[row] else RED
                draw.rectangle([x, y, x + width + 2 * border - 1, y + height + 2 * border - 1], fill=colour)
            canvas.paste(thumb, (x + border, y + border))
            text = f"#{rank + 1} {score:.3f}" + ("" if labels is None else f"\n{labels[row][rank]}")
            draw.multiline_text((x + border, y + height + 2 * border + 1), text, fill=BLACK, font=small, spacing=2)
    canvas.save(path)
    return path


def plot_training_curves(log_history: list[dict], path: str | Path) -> str | Path:
    """Plot a `Trainer.state.log_history` to `path` (losses, learning rate, evaluation metrics by step)."""
    losses, evaluations, rates = {}, {}, []
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if key == "loss" or key.startswith("loss_"):
                losses.setdefault(key, []).append((step, value))
            elif key.startswith("eval_") and not key.endswith(("runtime", "per_second", "loss")):
                evaluations.setdefault(key[5:], []).append((step, value))
        if "learning_rate" in entry:
            rates.append((step, entry["learning_rate"]))
    figure = Figure(figsize=(16, 4.5))  # drawn with the Agg canvas, leaving the host program's pyplot backend alone
    axes = figure.subplots(1, 3)
    for ax, series, title in ((axes[0], losses, "training losses"), (axes[2], evaluations, "validation metrics")):
        for name, points in sorted(series.items()):
            ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        if series:
            ax.legend(fontsize=8)
    if rates:
        axes[1].plot(*zip(*rates))
    axes[1].set_title("learning rate")
    axes[1].set_xlabel("step")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


class DatasetImages:
    """A dataset's `image` column indexed lazily, for `ranked_gallery_grid` (a gallery can be too large to decode at
    once)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, index):
        return self.dataset[int(index)]["image"]
