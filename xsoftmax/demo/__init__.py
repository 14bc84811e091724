"""Softmax regression from scratch, on any array library, on real data.

The program behind ``python -m xsoftmax.demo`` (also installed as ``xsoftmax-demo``):
a linear model, a softmax cross-entropy loss and its analytic gradient from
:func:`xsoftmax.cross_entropy_with_grad`, and minibatch SGD, written once against the
Python array API standard and run on NumPy, PyTorch, JAX, CuPy, Dask or
array-api-strict.

Modules
-------
``_data``
    The scikit-learn handwritten digits (no download) and a loader for the
    MNIST / Fashion-MNIST IDX files.
``_backends``
    ``--backend`` / ``--device`` to an array namespace, device and converters.
``_train``
    The model, its loss and gradient, and the training loop.
``_plot``
    Loss and accuracy curves with matplotlib.
"""

from __future__ import annotations

__all__: list[str] = []
