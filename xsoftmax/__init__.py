"""xsoftmax: exact, stable softmax, log-softmax, logsumexp and cross-entropy for any array library.

One implementation, written against the Python array API standard, serves
NumPy, PyTorch (CPU and CUDA), CuPy, JAX, Dask and array-api-strict: arrays of
one library in, arrays of the same library and device out.

Examples
--------
>>> import numpy as np
>>> import xsoftmax
>>> [round(float(v), 4) for v in xsoftmax.softmax(np.asarray([0.0, 1.0]))]
[0.2689, 0.7311]
>>> import array_api_strict as xp  # the standard alone is enough
>>> [round(float(v), 4) for v in xsoftmax.softmax(xp.asarray([0.0, 1.0]))]
[0.2689, 0.7311]
"""

from xsoftmax._api.bce import binary_cross_entropy_with_logits
from xsoftmax._api.linear import linear_cross_entropy, linear_cross_entropy_with_grad
from xsoftmax._api.losses import cross_entropy, cross_entropy_with_grad, nll_loss
from xsoftmax._api.softmax import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "cross_entropy_with_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "softmax",
]
