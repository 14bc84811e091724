"""Loss and accuracy curves of a training run, written as a PNG with matplotlib.

matplotlib is an optional extra (``pip install 'xsoftmax[demo]'``). The figure is drawn
with matplotlib's object-oriented API on the Agg canvas: no window, no global
backend switch, nothing shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xsoftmax.demo._train import EpochResult


def require_matplotlib() -> None:
    """Fail early, before training, when matplotlib is missing.

    Raises
    ------
    ImportError
        With the ``pip install`` line that fixes it.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        msg = f"--plot needs matplotlib ({exc}). Install it with: pip install 'xsoftmax[demo]'"
        raise ImportError(msg) from exc


def plot_history(history: Sequence[EpochResult], path: str | Path, *, title: str) -> Path:
    """Write train/test loss (left) and accuracy (right) per epoch to ``path``.

    Parameters
    ----------
    history : sequence of EpochResult
        One entry per epoch.
    path : str or pathlib.Path
        The PNG to write; its directory must exist.
    title : str
        The figure's title (data set, backend, settings).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r.epoch for r in history]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    style: dict[str, Any] = {"marker": "o", "markersize": 3, "linewidth": 1.5}
    loss_ax.plot(epochs, [r.train_loss for r in history], label="train", **style)
    loss_ax.plot(epochs, [r.test_loss for r in history], label="test", **style)
    loss_ax.set(title="Cross-entropy loss", xlabel="epoch", ylabel="mean loss (nats)")
    acc_ax.plot(epochs, [r.train_accuracy for r in history], label="train", **style)
    acc_ax.plot(epochs, [r.test_accuracy for r in history], label="test", **style)
    final = history[-1].test_accuracy if history else float("nan")
    acc_ax.axhline(final, color="grey", linestyle=":", linewidth=1)
    acc_ax.set(title=f"Accuracy (final test {final:.3f})", xlabel="epoch", ylabel="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xlim(0.5, epochs[-1] + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out
