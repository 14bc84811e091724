"""linear_cross_entropy and linear_cross_entropy_with_grad: the loss of a huge vocabulary.

The public functions validate (:mod:`xsoftmax._contract.linear_problem`) and make
one call into the dispatch (:mod:`xsoftmax._kernels.dispatch`), which picks the
driver by namespace: Dask arrays run row blocks on the workers
(:mod:`xsoftmax._kernels.dask.linear`), JAX arrays a ``lax.scan`` with a custom VJP
(:mod:`xsoftmax._kernels.jax.linear`), torch tensors that need gradients an
``autograd.Function`` (:mod:`xsoftmax._kernels.torch.linear`), and every other
namespace the eager sweeps (:mod:`xsoftmax._kernels.linear_sweeps`: the numba chunk
kernel where it applies, else the definition, :mod:`xsoftmax._definition.linear_loss`).
"""

from __future__ import annotations

from typing import Any

from xsoftmax._contract.array_types import Array as AnyArray
from xsoftmax._contract.array_types import ArrayT
from xsoftmax._contract.checks import torch_keywords
from xsoftmax._contract.linear_problem import setup
from xsoftmax._definition.reductions import zero_d
from xsoftmax._kernels import dispatch

Array = Any  # inside the module; the public signatures use ._typing's types


@torch_keywords
def linear_cross_entropy(
    input: ArrayT,
    linear_weight: AnyArray,
    target: AnyArray,
    /,
    *,
    linear_bias: AnyArray | None = None,
    weight: AnyArray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    dtype: Any = None,
) -> ArrayT:
    r"""Cross-entropy of a linear layer's logits, without ever holding the logits.

    The same value as ``cross_entropy(input @ linear_weight.T + linear_bias,
    target, ...)`` (torch 2.13's ``F.linear_cross_entropy`` names), computed
    over chunks of ``chunk_size`` classes: at most an ``(N, chunk_size)`` block
    of logits exists at any time. Per row, the running maximum, the number of
    logits equal to it and the sum of the others' exponentials are merged
    exactly across chunks, so the result keeps ``cross_entropy``'s accuracy.

    .. math::
        z_{n} = \operatorname{cap}(W x_n + b), \qquad
        \ell_n = \operatorname{CE}(z_n, t_n) + \lambda_z\,
        \big(\operatorname{logsumexp} z_n\big)^2,
        \qquad \operatorname{cap}(z) = s \tanh(z / s)

    Parameters
    ----------
    input : array
        Real floating features, shape ``(..., d)``; ``(d,)`` for one sample.
    linear_weight : array
        The output projection, shape ``(C, d)``.
    target : array
        Integer class indices of shape ``input.shape[:-1]``, or floating class
        probabilities of shape ``(*input.shape[:-1], C)``.
    linear_bias : array, optional
        Shape ``(C,)``.
    weight : array, optional
        Per-class weights ``(C,)``, as in :func:`~xsoftmax.cross_entropy`.
    ignore_index : int, optional
        Class-index targets equal to it contribute nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        As in :func:`~xsoftmax.cross_entropy`; the z-loss term is averaged over
        the counted (not ignored) samples with ``'mean'``.
    label_smoothing : float, optional
        In [0, 1], torch's definition.
    z_loss : float, optional
        Coefficient :math:`\lambda_z \ge 0` of ``logsumexp(logits)**2`` (PaLM);
        ignored samples contribute nothing and class weights do not scale it.
    softcap : float, optional
        :math:`s > 0`: the logits become ``s * tanh(logits / s)`` (Gemma 2) before
        everything else, the z-loss included.
    chunk_size : int, optional
        Classes per chunk; by default about ``3 * 2**21 / N`` (blocks of about 6.3
        million logits), at least 128. A smaller value lowers the peak memory.
    dtype : dtype, optional
        Output dtype; default that of ``input``. Half precision computes in float32.

    Returns
    -------
    array
        The loss: 0-d for ``'mean'``/``'sum'``, shape ``input.shape[:-1]`` for ``'none'``.

    Raises
    ------
    TypeError
        Non-floating ``input``/``linear_weight``/``linear_bias``; wrong target
        dtype; arrays of two libraries; bad option types.
    ValueError
        Mismatched ``d`` or a bias of the wrong length (both shapes named); wrong
        target or weight shape; class index out of range (eager arrays); bad option
        values; arrays on two devices.

    Notes
    -----
    On torch, gradients flow through a ``torch.autograd.Function`` that keeps
    three numbers per row and recomputes the chunks of logits in backward; on
    JAX through a ``jax.custom_vjp`` rule over a ``lax.scan`` (``jit`` and
    ``grad`` work). Dask arrays are processed by blocks of rows, each on a
    worker with the whole ``linear_weight``. As in ``cross_entropy``, class
    indices are range-checked on eager arrays; lazy arrays give NaN for an
    out-of-range sample instead.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> h = np.asarray([[1.0, 0.0], [0.0, 2.0]])
    >>> W = np.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> t = np.asarray([0, 2])
    >>> round(float(xsoftmax.linear_cross_entropy(h, W, t, chunk_size=2)), 4)
    0.8103
    >>> round(float(xsoftmax.cross_entropy(h @ W.T, t)), 4)
    0.8103

    The standard alone is enough:

    >>> import array_api_strict as xp
    >>> hs, Ws, ts = xp.asarray(h), xp.asarray(W), xp.asarray(t)
    >>> round(float(xsoftmax.linear_cross_entropy(hs, Ws, ts, chunk_size=2)), 4)
    0.8103
    """
    p = setup(
        "linear_cross_entropy",
        input,
        linear_weight,
        target,
        linear_bias=linear_bias,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        chunk_size=chunk_size,
        dtype=dtype,
    )
    return zero_d(dispatch.linear_loss(p))


@torch_keywords
def linear_cross_entropy_with_grad(
    input: ArrayT,
    linear_weight: AnyArray,
    target: AnyArray,
    /,
    *,
    linear_bias: AnyArray | None = None,
    weight: AnyArray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    dtype: Any = None,
) -> tuple[ArrayT, ArrayT, ArrayT, ArrayT | None]:
    r""":func:`linear_cross_entropy` and its gradients, without autograd.

    Takes exactly the arguments of :func:`linear_cross_entropy` and returns
    ``(loss, d_input, d_linear_weight, d_linear_bias)`` (``d_linear_bias`` is
    None without a bias). One sweep over the class chunks gives the per-row
    statistics, a second recomputes each chunk of logits and accumulates the
    gradients; no logits are kept. With ``reduction='none'`` the gradients are
    those of the sum of the per-sample losses. With
    :math:`g_n = \partial \ell / \partial z_n` (see
    :func:`~xsoftmax.cross_entropy_with_grad`, plus
    :math:`2 \lambda_z \operatorname{lse}_n\, p_n` for the z-loss, times
    :math:`1 - \tanh^2` under a cap):

    .. math::
        \partial_{x_n} = g_n W, \qquad \partial_W = \sum_n g_n^{\top} x_n,
        \qquad \partial_b = \sum_n g_n

    Parameters
    ----------
    input, linear_weight, target : array
        As for :func:`linear_cross_entropy`.
    linear_bias, weight, ignore_index, reduction, label_smoothing, z_loss, softcap, chunk_size, dtype
        As for :func:`linear_cross_entropy`.

    Returns
    -------
    loss : array
        As :func:`linear_cross_entropy` returns it.
    d_input, d_linear_weight, d_linear_bias : array
        Shapes and dtypes of ``input``, ``linear_weight``, ``linear_bias`` (None
        without a bias).

    Raises
    ------
    TypeError, ValueError
        As for :func:`linear_cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> h = np.asarray([[0.0, 0.0]])
    >>> W = np.asarray([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, dh, dW, db = xsoftmax.linear_cross_entropy_with_grad(
    ...     h, W, np.asarray([1]), linear_bias=np.asarray([0.0, 0.0]))
    >>> round(float(loss), 4), [float(v) for v in db]
    (0.6931, [0.5, -0.5])
    >>> [float(v) for v in dh[0, :]]
    [0.5, -0.5]
    """
    p = setup(
        "linear_cross_entropy_with_grad",
        input,
        linear_weight,
        target,
        linear_bias=linear_bias,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        chunk_size=chunk_size,
        dtype=dtype,
    )
    loss, *grads = dispatch.linear_loss_and_grads(p, tuple(int(s) for s in input.shape))
    return (zero_d(loss), *grads)
