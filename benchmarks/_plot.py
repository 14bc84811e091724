"""The benchmark plot: time per element against class count, log-log.

One panel per (dtype, library); in each, one colour per function, xsoftmax as a
solid line, its anchor dashed, and ``np.copyto`` of the input dotted grey (the
bandwidth floor). Where several shapes share a class count, the one with most
elements is drawn (the tiny (32, 10) case measures call overhead, not throughput).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

_COLOURS = {
    "log_softmax": "tab:blue",
    "softmax": "tab:green",
    "logsumexp": "tab:purple",
    "cross_entropy": "tab:red",
}


def _curve(points: dict[int, tuple[int, float]]) -> tuple[list[int], list[float]]:
    """Sorted (class count, ns per element) from {C: (elements, seconds)}."""
    xs = sorted(points)
    return xs, [points[c][1] / points[c][0] * 1e9 for c in xs]


def _keep_largest(
    points: dict[int, tuple[int, float]], classes: int, elements: int, t: float
) -> None:
    if classes not in points or points[classes][0] < elements:
        points[classes] = (elements, t)


def plot(cases: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Write the PNG of ``cases`` (the ``cases`` list of the results JSON) to ``path``.

    Parameters
    ----------
    cases : sequence of dict
        Each with ``library``, ``function``, ``shape``, ``dtype``, ``anchor`` and
        ``timings`` (contender name to ``{"median_s": ...}``).
    path : Path
        Where the PNG goes; parent folders are created.
    title : str
        Figure title (date and machine).

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({c["dtype"] for c in cases})
    libraries = [
        lib for lib in ("numpy", "torch", "jax") if any(c["library"] == lib for c in cases)
    ]
    fig, axes = plt.subplots(
        len(dtypes),
        len(libraries),
        figsize=(5.2 * len(libraries), 4.2 * len(dtypes)),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    for i, dtype in enumerate(dtypes):
        for j, lib in enumerate(libraries):
            ax = axes[i][j]
            mine: dict[str, dict[int, tuple[int, float]]] = {}
            theirs: dict[str, dict[int, tuple[int, float]]] = {}
            anchors: dict[str, str] = {}
            copy: dict[int, tuple[int, float]] = {}
            for c in cases:
                if c["library"] != lib or c["dtype"] != dtype:
                    continue
                rows, classes = c["shape"]
                n, f, tm = rows * classes, c["function"], c["timings"]
                anchors[f] = c["anchor"]
                _keep_largest(mine.setdefault(f, {}), classes, n, tm["xsoftmax"]["median_s"])
                _keep_largest(theirs.setdefault(f, {}), classes, n, tm[c["anchor"]]["median_s"])
                _keep_largest(copy, classes, n, tm["np.copyto"]["median_s"])
            for f in mine:
                colour = _COLOURS.get(f, "black")
                ax.plot(*_curve(mine[f]), "-o", color=colour, ms=3, label=f"{f}: xsoftmax")
                ax.plot(
                    *_curve(theirs[f]),
                    "--s",
                    color=colour,
                    ms=3,
                    alpha=0.7,
                    label=f"{f}: {anchors[f]}",
                )
            if copy:
                ax.plot(*_curve(copy), ":", color="grey", label="np.copyto (bandwidth)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{lib}, {dtype}")
            ax.grid(True, which="both", alpha=0.3)
            if i == len(dtypes) - 1:
                ax.set_xlabel("classes C (rows x C as in the table)")
            if j == 0:
                ax.set_ylabel("time per element (ns)")
            if i == len(dtypes) - 1:
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
