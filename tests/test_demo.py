"""The softmax-regression demo (``python -m xsoftmax.demo``).

Oracles: torch autograd for the gradient and for whole SGD steps; the NumPy run of
the same seed for the other backends; IDX files written here byte by byte with
``struct`` (independently of the loader); the IDX format's definition for what a
corrupt file is.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SKIPPED, get_backend

from xsoftmax.demo import _train
from xsoftmax.demo.__main__ import TextProgress, main, progress_factory
from xsoftmax.demo._backends import BackendUnavailableError, resolve_backend
from xsoftmax.demo._data import Dataset, load_digits, load_idx_dir, read_idx
from xsoftmax.demo._train import TrainConfig, init_params, loss_and_grad, train

FINAL_LINE = re.compile(r"^test accuracy: (0\.\d{3}|1\.000)$")
EPOCH_LINE = re.compile(r"^epoch +\d+/\d+ +train loss \S+ acc (\S+) +test loss \S+ acc (\S+)")

# float64 runs of the same batches differ only by the summation order inside the
# matrix products (BLAS vs. torch vs. XLA), ~1e-16 relative per operation
TOLERANCE = {
    "float64": {"rtol": 1e-9, "atol": 1e-12},
    "float32": {"rtol": 2e-4, "atol": 2e-5},
}


def demo_backend(name: str, device: str | None = None, *, float64: bool = False):
    """The demo's backend ``name``, skipped (with the reason) where the suite has not loaded it."""
    if name != "numpy" and get_backend(name) is None:
        why = SKIPPED.get(name, "not selected by XSOFTMAX_BACKENDS")
        pytest.skip(f"backend {name} is not loaded: {why}")
    return resolve_backend(name, device, float64=float64)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    return load_digits()


@pytest.fixture(scope="module")
def small_digits(digits: Dataset) -> Dataset:
    """300 training and 100 test digits: enough for every class, fast on every backend."""
    return Dataset(
        "digits subset",
        digits.x_train[:300],
        digits.y_train[:300],
        digits.x_test[:100],
        digits.y_test[:100],
        digits.n_classes,
    )


# 2 epochs of 5 steps (batches of 64 of 300 samples)
SMALL_RUN = TrainConfig(epochs=2, batch_size=64, lr=0.05, weight_decay=1e-3, seed=7)

_numpy_runs: dict[str, _train.TrainResult] = {}


def numpy_run(data: Dataset, dtype: str) -> _train.TrainResult:
    if dtype not in _numpy_runs:
        _numpy_runs[dtype] = train(data, resolve_backend("numpy"), SMALL_RUN, dtype=dtype)
    return _numpy_runs[dtype]


class DaskRuns:
    """Counts the graphs that Dask computes inside a ``with`` block (none without Dask)."""

    def __init__(self) -> None:
        self.count = 0
        self._callback = None
        try:
            from dask.callbacks import Callback
        except ImportError:
            return

        outer = self

        class Count(Callback):
            def _start(self, dsk) -> None:
                outer.count += 1

        self._callback = Count()

    def __enter__(self) -> DaskRuns:
        if self._callback is not None:
            self._callback.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._callback is not None:
            self._callback.__exit__(*exc)


# ---------------------------------------------------------------- reproducibility


def test_same_seed_same_weights_numpy(small_digits: Dataset) -> None:
    backend = resolve_backend("numpy")
    first = train(small_digits, backend, SMALL_RUN, dtype="float64")
    again = train(small_digits, backend, SMALL_RUN, dtype="float64")
    np.testing.assert_array_equal(first.weight, again.weight)
    np.testing.assert_array_equal(first.bias, again.bias)
    # and the seed matters: another seed, other initial weights and batches
    other = train(
        small_digits, backend, TrainConfig(**{**SMALL_RUN.__dict__, "seed": 8}), dtype="float64"
    )
    assert not np.allclose(first.weight, other.weight, **TOLERANCE["float32"])


@pytest.mark.parametrize(
    ("name", "device", "dtype"),
    [
        ("torch", None, "float64"),
        ("torch", None, "float32"),
        ("array-api-strict", None, "float64"),
        ("array-api-strict", None, "float32"),
        ("array-api-strict", "device1", "float32"),
        # one dtype each where a run costs seconds (JAX compiles, Dask builds graphs)
        ("jax", None, "float32"),
        ("dask", None, "float64"),
    ],
)
def test_same_seed_same_weights_as_numpy(
    small_digits: Dataset, name: str, device: str | None, dtype: str
) -> None:
    backend = demo_backend(name, device, float64=dtype == "float64")
    expected = numpy_run(small_digits, dtype)
    with DaskRuns() as runs:
        got = train(small_digits, backend, SMALL_RUN, dtype=dtype)
    # Dask: nothing is computed but the parameters and metrics, once per epoch
    assert runs.count == (SMALL_RUN.epochs if backend.lazy else 0)
    assert got.weight.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got.weight, expected.weight, **TOLERANCE[dtype])
    np.testing.assert_allclose(got.bias, expected.bias, **TOLERANCE[dtype])
    for mine, ref in zip(got.history, expected.history, strict=True):
        assert mine.test_accuracy == pytest.approx(ref.test_accuracy, abs=1 / 100 + 1e-12)
        assert mine.train_loss == pytest.approx(ref.train_loss, rel=1e-4)


def test_dask_persists_long_epochs(small_digits: Dataset, monkeypatch) -> None:
    """Epochs longer than LAZY_GRAPH_STEPS persist the parameters on the way."""
    backend = demo_backend("dask", float64=True)
    monkeypatch.setattr(_train, "LAZY_GRAPH_STEPS", 2)
    config = TrainConfig(**{**SMALL_RUN.__dict__, "epochs": 1})  # 5 steps
    with DaskRuns() as runs:
        got = train(small_digits, backend, config, dtype="float64")
    assert runs.count == 3  # persist after steps 2 and 4, then the epoch's compute
    expected = train(small_digits, resolve_backend("numpy"), config, dtype="float64")
    np.testing.assert_allclose(got.weight, expected.weight, **TOLERANCE["float64"])


# ---------------------------------------------------------------- gradient vs autograd


def torch_objective(torch, x, y, weight, bias, weight_decay, label_smoothing):
    """The training objective, written with torch.nn.functional (the oracle)."""
    logits = x @ weight + bias
    loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return loss + 0.5 * weight_decay * torch.sum(weight * weight)


@pytest.mark.parametrize(
    ("weight_decay", "label_smoothing"), [(0.0, 0.0), (1e-2, 0.0), (0.0, 0.1), (3e-3, 0.25)]
)
@pytest.mark.parametrize("name", ["numpy", "torch", "array-api-strict"])
def test_gradient_matches_torch_autograd(name: str, weight_decay: float, label_smoothing: float):
    torch = pytest.importorskip("torch", reason="torch autograd is the oracle")
    backend = demo_backend(name, float64=True)
    rng = np.random.default_rng(11)
    n, d, c = 13, 7, 5
    x, weight, bias = rng.normal(size=(n, d)), rng.normal(size=(d, c)), rng.normal(size=c)
    y = rng.integers(0, c, size=n)

    tw = torch.tensor(weight, requires_grad=True)
    tb = torch.tensor(bias, requires_grad=True)
    objective = torch_objective(
        torch, torch.tensor(x), torch.tensor(y), tw, tb, weight_decay, label_smoothing
    )
    objective.backward()

    loss, grad_weight, grad_bias = loss_and_grad(
        *(backend.asarray(a) for a in (weight, bias, x, y)),
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
    )
    got_loss, got_gw, got_gb = backend.fetch(loss, grad_weight, grad_bias)
    np.testing.assert_allclose(got_loss, objective.item(), rtol=1e-12)
    np.testing.assert_allclose(got_gw, tw.grad.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got_gb, tb.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_training_steps_are_sgd_on_the_autograd_gradient() -> None:
    """Whole epochs of train() equal SGD driven by torch autograd, batch by batch."""
    torch = pytest.importorskip("torch", reason="torch autograd is the oracle")
    rng = np.random.default_rng(5)
    n, d, c = 24, 6, 4
    data = Dataset(
        "synthetic",
        rng.normal(size=(n, d)),
        rng.permutation(np.arange(n) % c),
        rng.normal(size=(5, d)),
        np.arange(5) % c,
        c,
    )
    config = TrainConfig(epochs=2, batch_size=10, lr=0.3, weight_decay=0.02, label_smoothing=0.1)
    result = train(data, resolve_backend("numpy"), config, dtype="float64")

    # the oracle: the same initial weights and batch order (drawn in NumPy, as the
    # demo documents), 3 batches per epoch (10, 10, 4), gradient from autograd
    draw = np.random.default_rng(config.seed)
    weight_np, _ = init_params(d, c, draw, np.float64)
    weight = torch.tensor(weight_np, requires_grad=True)
    bias = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for _ in range(config.epochs):
        order = torch.tensor(draw.permutation(n))
        for first in range(0, n, config.batch_size):
            batch = order[first : first + config.batch_size]
            objective = torch_objective(
                torch,
                x[batch],
                y[batch],
                weight,
                bias,
                config.weight_decay,
                config.label_smoothing,
            )
            objective.backward()
            with torch.no_grad():
                weight -= config.lr * weight.grad
                bias -= config.lr * bias.grad
            weight.grad = bias.grad = None
    np.testing.assert_allclose(result.weight, weight.detach().numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(result.bias, bias.detach().numpy(), rtol=1e-11, atol=1e-14)


# ---------------------------------------------------------------- IDX files

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i2"): 0x0B, np.dtype("f4"): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file, from the format's definition: magic, big-endian dims, big-endian data."""
    code = IDX_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, content: bytes, *, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3) * 4,  # images
        np.array([3, 0, 9, 1, 255], dtype=np.uint8),  # labels
        np.array([-300, 7, 32000], dtype=np.int16),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    ],
    ids=["images-u8", "labels-u8", "i16", "f32"],
)
def test_read_idx_round_trips(tmp_path: Path, array: np.ndarray, compress: bool) -> None:
    name = "file-idx" + (".gz" if compress else "")
    got = read_idx(write(tmp_path / name, idx_bytes(array), compress=compress))
    assert got.shape == array.shape
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00" + GOOD[2:], "bad magic number 0x01000803"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "bad magic number 0x00000703"),
        (GOOD[:-1], "truncated: shape (2, 3, 4) of uint8 needs 24 bytes after the header, got 23"),
        (GOOD + b"\x00", "trailing bytes"),
        (GOOD[:9], "truncated IDX header"),
        (b"", "shorter than the 4-byte magic number"),
        (GOOD[:3] + b"\x00", "0 dimensions"),
    ],
    ids=["magic", "type-code", "truncated", "trailing", "header", "empty", "zero-dims"],
)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_rejects_corrupt_files(
    tmp_path: Path, content: bytes, message: str, compress: bool
) -> None:
    path = write(tmp_path / "bad-idx3-ubyte", content, compress=compress)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_corrupt_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(GOOD)[:-6])
    with pytest.raises(ValueError, match="corrupt gzip file"):
        read_idx(path)
    path = write(tmp_path / "y.gz", GOOD)
    with pytest.raises(ValueError, match=r"named \.gz but is not a gzip file"):
        read_idx(path)


def write_mnist_dir(
    directory: Path,
    *,
    n_train: int = 12,
    n_test: int = 6,
    n_train_labels: int | None = None,
    compress: bool = False,
    spelling: str = "-idx",
    side: int = 3,
) -> dict[str, np.ndarray]:
    """A tiny MNIST-style directory: two classes, class 1 images bright, class 0 dark."""
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n, n_labels in (
        ("train", n_train, n_train_labels or n_train),
        ("t10k", n_test, n_test),
    ):
        labels = (np.arange(n_labels) % 2).astype(np.uint8)
        images = rng.integers(0, 100, size=(n, side, side)).astype(np.uint8)
        images[np.arange(n) % 2 == 1] += 150
        suffix = ".gz" if compress else ""
        write(
            directory / f"{split}-images{spelling}3-ubyte{suffix}",
            idx_bytes(images),
            compress=compress,
        )
        write(
            directory / f"{split}-labels{spelling}1-ubyte{suffix}",
            idx_bytes(labels),
            compress=compress,
        )
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


@pytest.mark.parametrize(
    ("compress", "spelling"), [(False, "-idx"), (True, "-idx"), (False, ".idx")]
)
def test_load_idx_dir(tmp_path: Path, compress: bool, spelling: str) -> None:
    arrays = write_mnist_dir(tmp_path, compress=compress, spelling=spelling)
    data = load_idx_dir(tmp_path)
    assert data.x_train.shape == (12, 9)
    assert data.x_test.shape == (6, 9)
    assert data.n_classes == 2
    np.testing.assert_array_equal(data.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(data.y_test, arrays["t10k_labels"])
    # standardized with the training statistics: pixel j of image i is (p_ij - mean_j) / std_j
    pixels = arrays["train_images"].reshape(12, 9).astype(np.float64)
    expected = (pixels - pixels.mean(axis=0)) / pixels.std(axis=0)
    np.testing.assert_allclose(data.x_train, expected, rtol=1e-12)


def test_load_idx_dir_rejects_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_idx_dir(tmp_path / "nowhere")
    write_mnist_dir(tmp_path, n_train_labels=11)
    with pytest.raises(ValueError, match=r"holds 12 images but .* holds 11 labels"):
        load_idx_dir(tmp_path)
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        load_idx_dir(tmp_path)


def test_load_idx_dir_rejects_mismatched_image_sizes(tmp_path: Path) -> None:
    write_mnist_dir(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((6, 2, 2), np.uint8)))
    with pytest.raises(ValueError, match="training images have 9 pixels but test images have 4"):
        load_idx_dir(tmp_path)


# ---------------------------------------------------------------- command line


def run_cli(capsys, *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_cli_default_run_reaches_the_goal(capsys, digits: Dataset) -> None:
    """The README's command: built-in digits, NumPy, defaults; the issue asks >= 0.95."""
    status, lines, _ = run_cli(capsys, "--no-progress")
    assert status == 0
    assert FINAL_LINE.match(lines[-1]), lines[-1]
    assert float(lines[-1].split(": ")[1]) >= 0.95
    epochs = [m for m in map(EPOCH_LINE.match, lines) if m]
    assert len(epochs) == TrainConfig().epochs
    assert lines[-1].split(": ")[1] == epochs[-1].group(2)


def test_cli_smoke_with_every_option(capsys, digits: Dataset) -> None:
    status, lines, err = run_cli(
        capsys,
        *("--epochs", "2", "--batch-size", "128", "--lr", "0.1", "--weight-decay", "0"),
        *("--label-smoothing", "0.1", "--seed", "3", "--dtype", "float64"),
        *("--backend", "numpy", "--device", "cpu"),
    )
    assert status == 0, err
    assert FINAL_LINE.match(lines[-1]), lines[-1]
    assert len([line for line in lines if EPOCH_LINE.match(line)]) == 2
    assert "float64" in lines[1]
    assert "label smoothing 0.1" in lines[1]


def test_cli_on_idx_files(capsys, tmp_path: Path) -> None:
    write_mnist_dir(tmp_path, compress=True)
    status, lines, err = run_cli(
        capsys, "--data", str(tmp_path), "--epochs", "3", "--batch-size", "4", "--no-progress"
    )
    assert status == 0, err
    assert "12 train, 6 test, 9 features, 2 classes" in lines[0]
    assert FINAL_LINE.match(lines[-1]), lines[-1]


def test_cli_plot_writes_a_png(capsys, tmp_path: Path, digits: Dataset) -> None:
    image = pytest.importorskip("matplotlib.image", reason="--plot needs matplotlib")
    path = tmp_path / "curves.png"
    status, lines, err = run_cli(capsys, "--epochs", "3", "--no-progress", "--plot", str(path))
    assert status == 0, err
    assert f"plot: {path}" in lines
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 10 x 4.2 inches at 120 dpi (the figure _plot draws)
    assert image.imread(path).shape[:2] == (504, 1200)


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--backend", "nope"], 2, "argument --backend: invalid choice: 'nope'"),
        (["--epochs", "-1"], 2, "argument --epochs: expected an integer >= 1, got '-1'"),
        (["--epochs", "two"], 2, "argument --epochs: expected an integer >= 1"),
        (["--batch-size", "0"], 2, "argument --batch-size: expected an integer >= 1"),
        (["--lr", "nan"], 2, "argument --lr: expected a finite number > 0"),
        (["--lr", "0"], 2, "argument --lr: expected a finite number > 0"),
        (["--weight-decay=-1e-3"], 2, "argument --weight-decay: expected a finite number >= 0"),
        (
            ["--label-smoothing", "1.5"],
            2,
            "argument --label-smoothing: expected a number in [0, 1]",
        ),
        (["--seed", "-3"], 2, "argument --seed: expected an integer >= 0"),
        (["--dtype", "float16"], 2, "argument --dtype: invalid choice"),
        (["--device", "cuda"], 2, "--backend numpy: cannot use --device 'cuda'"),
        (["--backend", "array-api-strict", "--device", "gpu"], 2, "cannot use --device 'gpu'"),
        (["--plot", "/nonexistent/dir/x.png"], 2, "directory /nonexistent/dir does not exist"),
        (["--plot", "curves.xyz"], 2, "unknown image type 'xyz'"),
    ],
)
def test_cli_rejects_bad_options(capsys, argv: list[str], status: int, message: str) -> None:
    if "--plot" in argv:
        pytest.importorskip("matplotlib", reason="the path is checked once matplotlib imports")
    got, lines, err = run_cli(capsys, *argv)
    assert got == status
    assert message in err
    assert not any(EPOCH_LINE.match(line) for line in lines)  # nothing was trained


def test_cli_rejects_missing_and_corrupt_data(capsys, tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "--data", str(tmp_path / "missing"))
    assert status == 1
    assert f"{tmp_path / 'missing'} is not a directory" in err
    write_mnist_dir(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", GOOD[:-5])
    status, _, err = run_cli(capsys, "--data", str(tmp_path))
    assert status == 1
    assert "train-images-idx3-ubyte: IDX data truncated" in err


def test_cli_torch_without_cuda(capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status, _, err = run_cli(capsys, "--backend", "torch", "--device", "cuda")
    assert status == 2
    assert "--backend torch: cannot use --device 'cuda'" in err


MODULES = {
    "torch": ["torch", "array_api_compat.torch"],
    "jax": ["jax", "jax.numpy"],
    "cupy": ["cupy", "array_api_compat.cupy"],
    "dask": ["dask", "dask.array", "array_api_compat.dask.array"],
    "array-api-strict": ["array_api_strict"],
}


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("torch", "torch"),
        ("jax", "jax"),
        ("cupy", "cupy"),
        ("dask", "dask"),
        ("array-api-strict", "strict"),
    ],
)
def test_missing_backend_names_the_extra(capsys, monkeypatch, name: str, extra: str) -> None:
    for module in MODULES[name]:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(
        BackendUnavailableError, match=re.escape(f"pip install 'xsoftmax[{extra}]'")
    ):
        resolve_backend(name)
    status, _, err = run_cli(capsys, "--backend", name)
    assert status == 2
    assert f"--backend {name} needs a package that is not installed" in err


def test_cupy_without_a_gpu(capsys, monkeypatch) -> None:
    """CuPy installed on a machine whose CUDA runtime finds no device (a stand-in module)."""
    import types

    class CUDARuntimeError(RuntimeError):
        pass

    def no_device() -> int:
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    runtime = types.SimpleNamespace(
        getDeviceCount=no_device, getDevice=lambda: 0, CUDARuntimeError=CUDARuntimeError
    )
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=runtime)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", types.ModuleType("compat_cupy"))
    status, _, err = run_cli(capsys, "--backend", "cupy")
    assert status == 2
    assert "--backend cupy: cannot use --device 'cuda': cudaErrorNoDevice" in err
    status, _, err = run_cli(capsys, "--backend", "cupy", "--device", "tpu:0")
    assert status == 2
    assert "CuPy devices are written cuda, cuda:N, gpu:N or N" in err


@pytest.mark.parametrize(
    ("module", "argv"),
    [("matplotlib", ["--plot", "x.png"]), ("sklearn.datasets", [])],
)
def test_missing_demo_extra(capsys, monkeypatch, module: str, argv: list[str]) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    status, lines, err = run_cli(capsys, "--no-progress", *argv)
    assert status == 2
    assert "pip install 'xsoftmax[demo]'" in err
    assert not any(EPOCH_LINE.match(line) for line in lines)


# ---------------------------------------------------------------- progress bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_progress_draws_on_a_terminal_only() -> None:
    term = Terminal()
    bar = TextProgress(3, "epoch 1/2", term)
    for _ in range(3):
        bar.update()
    bar.close()
    text = term.getvalue()
    assert "\repoch 1/2 [" + "#" * 10 + "." * 20 + "] 1/3" in text
    assert "\repoch 1/2 [" + "#" * 30 + "] 3/3" in text
    assert text.endswith("\r")
    log = io.StringIO()
    bar = TextProgress(3, "epoch 1/2", log)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""


def test_progress_falls_back_without_tqdm(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = progress_factory(Terminal())(5, "epoch 1/1")
    assert isinstance(bar, TextProgress)


def test_progress_uses_tqdm_on_stderr(capsys, digits: Dataset, monkeypatch) -> None:
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys, "stderr", Terminal())
    status = main(["--epochs", "1"])
    assert status == 0
    assert "epoch 1/1:" in sys.stderr.getvalue()
    assert "/45 [" in sys.stderr.getvalue()  # 1437 training digits in batches of 32
