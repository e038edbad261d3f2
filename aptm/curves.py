"""Training curves as a PNG: every logged loss term, the learning rate and the evaluation metrics."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(log_history, path):
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
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
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
    plt.close(figure)
    return path
