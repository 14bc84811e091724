"""Draw ``docs/img/architecture.png``: the four layers and the path of one call.

Run from the repository root (needs matplotlib): ``python docs/_tools/architecture_diagram.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parent.parent / "img" / "architecture.png"

LAYERS = [
    ("public API", "xsoftmax/_api/", "softmax.py  losses.py  bce.py  linear.py", "#dbe9f6"),
    (
        "kernels",
        "xsoftmax/_kernels/",
        "dispatch.py (the table)  numba/  torch/  jax/  dask/  numpy_ufuncs.py  linear_sweeps.py",
        "#fde2c8",
    ),
    (
        "definition",
        "xsoftmax/_definition/",
        "rows.py  reductions.py  logit_extras.py  linear_sweep.py  linear_loss.py  blocked.py",
        "#d8f0d2",
    ),
    (
        "contract",
        "xsoftmax/_contract/",
        "checks.py  namespaces.py  dtypes.py  prepare.py  targets.py  loss_problem.py  linear_problem.py",
        "#eadcf3",
    ),
]
STEPS = [
    "1  xsoftmax.cross_entropy(logits, target, ...)",
    "2  setup_loss: every argument checked once,\n    the logits cast to their compute dtype",
    "3  softcap on the prepared logits (definition)",
    "4  dispatch.target_nll: the first row of the table that serves the array",
    "5  numba / torch / JAX kernel, or the definition\n    (the oracle every kernel is held to)",
    "6  reduction and z-loss (definition): the result\n    in the caller's library, on its device",
]


def main() -> None:
    fig, ax = plt.subplots(figsize=(13.5, 6.2))
    ax.set_xlim(0, 13.5)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    top = 5.6
    for i, (name, folder, files, color) in enumerate(LAYERS):
        y = top - i * 1.35
        box = FancyBboxPatch(
            (0.2, y - 1.0), 7.6, 1.0, boxstyle="round,pad=0.03", fc=color, ec="#555555"
        )
        ax.add_patch(box)
        ax.text(0.35, y - 0.3, f"{name}", fontsize=12, weight="bold", va="center")
        ax.text(2.2, y - 0.3, folder, fontsize=10, family="monospace", va="center")
        ax.text(0.35, y - 0.72, files, fontsize=7.5, family="monospace", va="center")
        if i < len(LAYERS) - 1:
            arrow = FancyArrowPatch(
                (4.0, y - 1.0), (4.0, y - 1.35 + 0.02), arrowstyle="-|>", mutation_scale=14
            )
            ax.add_patch(arrow)
    ax.text(0.2, 0.12, "each layer imports only the layers below it", fontsize=9, style="italic")
    ax.text(8.1, 5.45, "one cross_entropy call", fontsize=11, weight="bold")
    for j, step in enumerate(STEPS):
        ax.text(8.1, 5.0 - j * 0.62, step, fontsize=8.2, wrap=True, va="top")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
