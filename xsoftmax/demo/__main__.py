"""``python -m xsoftmax.demo``: train softmax regression from scratch and report.

Run ``python -m xsoftmax.demo --help`` for the options. The last line printed is
``test accuracy: 0.xxx``. Exit status: 0 on success, 1 for bad or missing data or a
diverged run, 2 for bad options and for a backend, device or optional package that
is not available (the message says what to install).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from xsoftmax import __version__
from xsoftmax.demo._backends import BACKENDS, BackendUnavailableError, resolve_backend
from xsoftmax.demo._data import Dataset, load_digits, load_idx_dir
from xsoftmax.demo._train import EpochResult, Progress, ProgressFactory, TrainConfig, train

PROG = "xsoftmax-demo"
DEFAULTS = TrainConfig()


class TextProgress:
    """A plain progress bar on a text stream, for when tqdm is not installed.

    Like tqdm here, it draws only when the stream is a terminal.
    """

    WIDTH = 30

    def __init__(self, total: int, description: str, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.description = description
        self.stream = stream
        self.done = 0
        self._shown = -1
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())  # no bar in logs and pipes

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps, redrawing at most ``WIDTH`` times per epoch."""
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        filled = self.WIDTH * self.done // self.total
        if filled != self._shown:
            self._shown = filled
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r{self.description} [{bar}] {self.done}/{self.total}")
            self.stream.flush()

    def close(self) -> None:
        """Erase the bar, leaving the line to the epoch report."""
        if not self.enabled or self._shown < 0:
            return
        width = len(self.description) + self.WIDTH + 2 * len(str(self.total)) + 5
        self.stream.write("\r" + " " * width + "\r")
        self.stream.flush()


def progress_factory(stream: TextIO) -> ProgressFactory:
    """Progress bars on ``stream``: tqdm's when installed, :class:`TextProgress` otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:

        def text_bar(total: int, description: str) -> Progress:
            return TextProgress(total, description, stream)

        return text_bar

    def tqdm_bar(total: int, description: str) -> Progress:
        # disable=None: no bar when the stream is not a terminal (logs, pipes)
        bar: Progress = tqdm(
            total=total,
            desc=description,
            file=stream,
            leave=False,
            unit="batch",
            ncols=80,
            disable=None,
        )
        return bar

    return tqdm_bar


def _number(
    kind: Callable[[str], Any], check: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            msg = f"expected {expected}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
non_negative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
unit_float = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Softmax regression from scratch: a linear model, xsoftmax's "
            "cross_entropy_with_grad and minibatch SGD, the same code on every array "
            "library. Trains on scikit-learn's handwritten digits (no download) or on "
            "MNIST / Fashion-MNIST IDX files."
        ),
        epilog=(
            "Losses reported are the plain mean cross entropy over the whole split "
            "(no label smoothing, no weight decay). The last line is 'test accuracy: 0.xxx'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="array library to train with (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="device of the backend: cpu, cuda, cuda:1 (torch, cupy), gpu, gpu:0 (jax), "
        "device1 (array-api-strict) (default: the library's default device)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory with the MNIST or Fashion-MNIST IDX files "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte, each raw or .gz (default: scikit-learn's 8x8 digits)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS.epochs,
        help="passes over the training set (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS.batch_size,
        help="samples per SGD step (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=DEFAULTS.lr,
        help="SGD learning rate (default: %(default)s)",
    )
    parser.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=DEFAULTS.weight_decay,
        help="L2 penalty on the weights, not the bias (default: %(default)s)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=unit_float,
        default=DEFAULTS.label_smoothing,
        help="label smoothing of the training loss, in [0, 1] (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULTS.seed,
        help="seed of the initial weights and the batch order (default: %(default)s)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="floating dtype of the data and the model (default: %(default)s)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="write the loss and accuracy curves to this image (needs matplotlib)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _error(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _epoch_line(record: EpochResult, epochs: int) -> str:
    width = len(str(epochs))
    return (
        f"epoch {record.epoch:>{width}}/{epochs}  "
        f"train loss {record.train_loss:.4f} acc {record.train_accuracy:.3f}  "
        f"test loss {record.test_loss:.4f} acc {record.test_accuracy:.3f}  "
        f"({record.seconds:.2f} s)"
    )


def _check_plot_path(path: Path) -> None:
    from xsoftmax.demo._plot import require_matplotlib

    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = path.suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in supported:
        msg = f"--plot: cannot write {path}: unknown image type {suffix!r} (use .png)"
        raise ValueError(msg)
    if not path.parent.is_dir():
        msg = f"--plot: cannot write {path}: directory {path.parent} does not exist"
        raise FileNotFoundError(msg)


class _Diverged(Exception):
    pass


def _run(args: argparse.Namespace) -> int:
    if args.plot is not None:
        try:
            _check_plot_path(args.plot)
        except ImportError as exc:
            return _error(str(exc), 2)
        except (ValueError, OSError) as exc:
            return _error(str(exc), 2)
    try:
        backend = resolve_backend(args.backend, args.device, float64=args.dtype == "float64")
    except BackendUnavailableError as exc:
        return _error(str(exc), 2)
    try:
        data: Dataset = load_digits() if args.data is None else load_idx_dir(args.data)
    except ImportError as exc:
        return _error(str(exc), 2)
    except (OSError, ValueError) as exc:
        return _error(str(exc), 1)

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
    )
    print(f"data: {data.describe()}")
    print(
        f"model: softmax regression, backend {backend.name} on {backend.device_label}, "
        f"{args.dtype}; {config.epochs} epoch{'s' if config.epochs != 1 else ''}, batch {config.batch_size}, lr {config.lr:g}, "
        f"weight decay {config.weight_decay:g}, label smoothing {config.label_smoothing:g}, "
        f"seed {config.seed}"
    )

    def report(record: EpochResult) -> None:
        print(_epoch_line(record, config.epochs), flush=True)
        if not math.isfinite(record.train_loss):
            raise _Diverged(record.train_loss)

    progress = None if args.no_progress else progress_factory(sys.stderr)
    start = time.perf_counter()
    try:
        result = train(data, backend, config, dtype=args.dtype, progress=progress, on_epoch=report)
    except _Diverged as exc:
        msg = f"training diverged (train loss {exc.args[0]}); try a smaller --lr"
        return _error(msg, 1)
    seconds = time.perf_counter() - start
    print(f"trained in {seconds:.2f} s")
    if args.plot is not None:
        from xsoftmax.demo._plot import plot_history

        title = (
            f"Softmax regression on {data.name}: {backend.name} ({backend.device_label}), "
            f"lr {config.lr:g}, batch {config.batch_size}"
        )
        plot_history(result.history, args.plot, title=title)
        print(f"plot: {args.plot}")
    print(f"test accuracy: {result.history[-1].test_accuracy:.3f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own message for a bad option
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _run(args)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
