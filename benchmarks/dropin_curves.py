"""Training curves of three example programs, with the original loss and with xsoftmax's.

Each program changes one import line between its two runs:

* torch: a character-level language model on the text of Python's own ``textwrap.py``,
  its last layer ``nn.LinearCrossEntropyLoss`` (``torch.nn`` / ``xsoftmax.nn``); plus the
  peak memory of that head against ``nn.Linear`` + ``nn.CrossEntropyLoss`` on the full logits;
* Keras: a dense classifier ``fit`` on scikit-learn's digits with
  ``SparseCategoricalCrossentropy(from_logits=True)`` (``keras.losses`` /
  ``xsoftmax.keras``), under ``KERAS_BACKEND=jax`` and ``torch`` (each in a subprocess:
  Keras picks its backend once per process);
* JAX: the same classifier with optax's Adam and
  ``softmax_cross_entropy_with_integer_labels`` (``optax`` / ``xsoftmax.optax``).

Writes ``docs/img/dropin_curves.png`` and ``benchmarks/results/dropin_curves.json``::

    python benchmarks/dropin_curves.py            # the docs' sizes (a few minutes on 2 cores)
    python benchmarks/dropin_curves.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT_PNG = ROOT / "docs" / "img" / "dropin_curves.png"
OUT_JSON = ROOT / "benchmarks" / "results" / "dropin_curves.json"


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target.astype("int64")


# ------------------------------------------------------------------------------- torch


def torch_char_lm(nn_module, steps: int, context: int = 8, batch: int = 256) -> list[float]:
    """The torch program: ``from torch import nn`` or ``from xsoftmax import nn``."""
    import textwrap

    import torch

    torch.manual_seed(0)
    text = Path(textwrap.__file__).read_text(encoding="utf-8")
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(ch) for ch in text])
    windows = ids.unfold(0, context + 1, 1)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(1))
    model = torch.nn.Sequential(
        torch.nn.Embedding(len(vocab), 16),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * context, 128),
        torch.nn.GELU(),
    )
    head = nn_module.LinearCrossEntropyLoss(128, len(vocab), bias=True)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
    curve = []
    for step in range(steps):
        rows = windows[order[(step * batch) % len(order) :][:batch]]
        opt.zero_grad()
        loss = head(model(rows[:, :context]), rows[:, context])
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return curve


def torch_head_memory(n_tokens: int = 4096, d: int = 128, vocab: int = 32000) -> dict[str, int]:
    """Peak extra memory of one forward + backward of a language model's last layer."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _memory import torch_peak

    import xsoftmax.nn

    torch.manual_seed(0)
    h = torch.randn(n_tokens, d, requires_grad=True)
    t = torch.randint(0, vocab, (n_tokens,))
    linear = torch.nn.Linear(d, vocab, bias=False)
    full = torch.nn.CrossEntropyLoss()
    chunked = xsoftmax.nn.LinearCrossEntropyLoss(d, vocab)
    chunked.load_state_dict({"linear.weight": linear.weight.detach()})

    def run_full():
        full(linear(h), t).backward()

    def run_chunked():
        chunked(h, t).backward()

    out = {}
    for name, fn in (
        ("nn.Linear + nn.CrossEntropyLoss", run_full),
        ("xsoftmax.nn.LinearCrossEntropyLoss", run_chunked),
    ):
        fn()  # warm up
        peak = torch_peak(fn)
        out[name] = None if peak is None else peak.peak_bytes
    out["logits_bytes"] = n_tokens * vocab * 4
    return out


# ------------------------------------------------------------------------------- keras


def keras_digits(use_xsoftmax: bool, epochs: int) -> list[float]:
    """The Keras program: ``keras.losses`` or ``xsoftmax.keras``."""
    import keras

    if use_xsoftmax:
        from xsoftmax import keras as losses
    else:
        from keras import losses
    x, y = _digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=64, epochs=epochs, shuffle=False, verbose=0)
    return history.history["loss"]


# --------------------------------------------------------------------------------- jax


def jax_digits(use_xsoftmax: bool, steps: int) -> list[float]:
    """The JAX program: ``optax`` or ``xsoftmax.optax`` for the loss; optax's Adam either way."""
    import jax
    import jax.numpy as jnp
    import optax

    if use_xsoftmax:
        from xsoftmax import optax as losses
    else:
        losses = optax
    x, y = _digits()
    x, y = jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "w1": jax.random.normal(k1, (64, 64)) * 0.1,
        "b1": jnp.zeros(64),
        "w2": jax.random.normal(k2, (64, 10)) * 0.1,
    }
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def loss_of(p, xb, yb):
        logits = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"]
        return losses.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_of)(p, xb, yb)
        updates, s = opt.update(grads, s)
        return optax.apply_updates(p, updates), s, loss

    curve = []
    n = len(x) // 64
    for i in range(steps):
        j = i % n
        params, state, loss = step(
            params, state, x[j * 64 : (j + 1) * 64], y[j * 64 : (j + 1) * 64]
        )
        curve.append(float(loss))
    return curve


# -------------------------------------------------------------------------------- main


def _subprocess_part(part: str, backend: str, size: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    cmd = [sys.executable, __file__, "--part", part, "--size", str(size)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_part(part: str, size: int) -> dict:
    if part == "keras":
        return {"original": keras_digits(False, size), "xsoftmax": keras_digits(True, size)}
    raise SystemExit(f"unknown part {part}")


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("torch: char-level LM, LinearCrossEntropyLoss", "torch", "step"),
        ("Keras (jax backend): digits, fit", "keras-jax", "epoch"),
        ("Keras (torch backend): digits, fit", "keras-torch", "epoch"),
        ("JAX + optax: digits", "jax", "step"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (title, key, xlabel) in zip(axes, panels, strict=True):
        original, ours = np.asarray(results[key]["original"]), np.asarray(results[key]["xsoftmax"])
        rel = float(np.max(np.abs(ours - original) / np.abs(original)))
        ax.plot(original, lw=3, alpha=0.5, label="original")
        ax.plot(ours, lw=1, color="black", ls="--", label="xsoftmax")
        ax.set_title(f"{title}\nmax rel. difference {rel:.1e}", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        print(json.dumps(_run_part(args.part, args.size)))
        return 0
    steps, epochs = (30, 2) if args.quick else (400, 15)
    import torch

    torch.set_num_threads(1)
    import xsoftmax.nn

    t0 = time.perf_counter()
    results = {
        "torch": {
            "original": torch_char_lm(torch.nn, steps),
            "xsoftmax": torch_char_lm(xsoftmax.nn, steps),
        },
        "keras-jax": _subprocess_part("keras", "jax", epochs),
        "keras-torch": _subprocess_part("keras", "torch", epochs),
        "jax": {"original": jax_digits(False, steps), "xsoftmax": jax_digits(True, steps)},
        "memory": torch_head_memory(*((1024, 64, 4000) if args.quick else ())),
    }
    results["seconds"] = round(time.perf_counter() - t0, 1)
    for key in ("torch", "keras-jax", "keras-torch", "jax"):
        a, b = np.asarray(results[key]["original"]), np.asarray(results[key]["xsoftmax"])
        results[key]["max_rel_difference"] = float(np.max(np.abs(a - b) / np.abs(a)))
        print(
            f"{key:12s} final loss {a[-1]:.4f} / {b[-1]:.4f}, max rel. diff {results[key]['max_rel_difference']:.1e}"
        )
    print("peak memory of one forward + backward of the head:", results["memory"])
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if not args.quick:
        _plot(results, OUT_PNG)
        print(f"wrote {OUT_PNG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
