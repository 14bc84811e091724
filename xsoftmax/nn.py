"""Drop-in torch modules: change ``from torch import nn`` losses to ``from xsoftmax import nn``.

Each class here subclasses its ``torch.nn`` namesake and replaces only ``forward``: the
constructor (arguments, defaults, the deprecated ``size_average``/``reduce`` and their
warning), the buffers (``weight``, ``pos_weight``: the ``state_dict()`` keys are torch's,
so a checkpoint loads either way), ``extra_repr`` and ``isinstance`` checks are torch's
own. The forward pass calls xsoftmax's exact functions with torch's class axis (``dim=1``
for ``(N, C, d1, ...)``, 0 for an unbatched ``(C,)`` input).

Deliberate differences from torch (listed in the docs, ``docs/dropin/torch.md``): the
values are exact where torch loses digits (large or extreme logits); a class index out
of range, a bad ``label_smoothing`` or a wrong shape raises ``ValueError``/``TypeError``
instead of ``IndexError``/``RuntimeError`` or a device-side assert (on a GPU, and under
``torch.compile``, an out-of-range index gives NaN for that sample instead, never a
wrapped index); any integer target dtype is accepted; ``BCEWithLogitsLoss`` gives the
limits at ``±inf`` logits instead of NaN.

Examples
--------
>>> import torch
>>> from xsoftmax import nn  # was: from torch import nn
>>> loss_fn = nn.CrossEntropyLoss()
>>> logits = torch.tensor([[2.0, 0.5, -1.0], [1e8, 1e8, 0.0]], requires_grad=True)
>>> loss = loss_fn(logits, torch.tensor([0, 1]))
>>> loss.backward()
>>> round(loss.item(), 4)  # the mean of 0.2413 and log(2)
0.4672
>>> sorted(nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)).state_dict())
['pos_weight']
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

import xsoftmax

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "LogSoftmax",
    "NLLLoss",
    "Softmax",
]


def _class_axis(input: Tensor) -> int:
    """torch's class dimension: 1 for ``(N, C, ...)``, 0 for an unbatched ``(C,)`` input."""
    return 1 if input.ndim >= 2 else 0


def _implicit_dim(name: str, ndim: int) -> int:
    """torch's legacy choice of ``dim`` for ``Softmax()``/``LogSoftmax()``, with its warning."""
    msg = (
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument."
    )
    warnings.warn(msg, UserWarning, stacklevel=4)
    return 0 if ndim in (0, 1, 3) else 1


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` computed by :func:`xsoftmax.cross_entropy`.

    Same constructor as torch's: ``CrossEntropyLoss(weight=None, size_average=None,
    ignore_index=-100, reduce=None, reduction='mean', label_smoothing=0.0)``.

    .. math::
        \\ell_n = -(1-\\varepsilon)\\, w_{t_n} \\log p_{n,t_n}
                 - \\frac{\\varepsilon}{C} \\sum_c w_c \\log p_{n,c}

    Shapes: input ``(N, C, d1, ...)`` or ``(C,)``; target the class indices
    ``(N, d1, ...)`` (any integer dtype) or probabilities of the input's shape.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> x = torch.tensor([[0.0, -40.0]], dtype=torch.float64)
    >>> nn.CrossEntropyLoss()(x, torch.tensor([0])).item()  # torch: 0.0
    4.248354255291589e-18
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of ``input`` logits against ``target``."""
        return xsoftmax.cross_entropy(
            input,
            target,
            axis=_class_axis(input),
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(torch.nn.NLLLoss):
    """``torch.nn.NLLLoss`` computed by :func:`xsoftmax.nll_loss`.

    Same constructor as torch's: ``NLLLoss(weight=None, size_average=None,
    ignore_index=-100, reduce=None, reduction='mean')``. The input is used as given
    (log-probabilities, class axis 1; ``(C,)`` unbatched).

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> log_probs = nn.LogSoftmax(dim=1)(torch.tensor([[2.0, 0.5, -1.0]]))
    >>> round(nn.NLLLoss()(log_probs, torch.tensor([0])).item(), 4)
    0.2413
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of ``input`` log-probabilities against class indices ``target``."""
        return xsoftmax.nll_loss(
            input,
            target,
            axis=_class_axis(input),
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """``torch.nn.BCEWithLogitsLoss`` by :func:`xsoftmax.binary_cross_entropy_with_logits`.

    Same constructor as torch's: ``BCEWithLogitsLoss(weight=None, size_average=None,
    reduce=None, reduction='mean', pos_weight=None)``; ``weight`` and ``pos_weight``
    are buffers, as in torch. Finite for finite logits of any magnitude, and the
    limits (0 or ``inf``) at ``±inf`` logits where torch gives NaN.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> x = torch.tensor([float("inf"), -120.0])
    >>> nn.BCEWithLogitsLoss(reduction="none")(x, torch.ones(2)).tolist()  # torch: nan
    [0.0, 120.0]
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of ``input`` logits against ``target`` probabilities (same shape)."""
        return xsoftmax.binary_cross_entropy_with_logits(
            input,
            target,
            weight=self.weight,
            pos_weight=self.pos_weight,
            reduction=self.reduction,
        )


class LogSoftmax(torch.nn.LogSoftmax):
    """``torch.nn.LogSoftmax(dim=None)`` computed by :func:`xsoftmax.log_softmax`.

    ``dim=None`` keeps torch's legacy choice (dim 0 for 0-, 1- and 3-d input, else
    1) and its deprecation warning.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> nn.LogSoftmax(dim=-1)(torch.tensor([0.0, -40.0], dtype=torch.float64))[0].item()
    -4.248354255291589e-18
    """

    def forward(self, input: Tensor) -> Tensor:
        """Log-probabilities along ``self.dim``."""
        dim = self.dim if self.dim is not None else _implicit_dim("log_softmax", input.ndim)
        return xsoftmax.log_softmax(input, axis=dim)


class Softmax(torch.nn.Softmax):
    """``torch.nn.Softmax(dim=None)`` computed by :func:`xsoftmax.softmax`.

    ``dim=None`` keeps torch's legacy choice (dim 0 for 0-, 1- and 3-d input, else
    1) and its deprecation warning.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> nn.Softmax(dim=1)(torch.tensor([[1e30, -1e30, 0.0]])).tolist()
    [[1.0, 0.0, 0.0]]
    """

    def forward(self, input: Tensor) -> Tensor:
        """Probabilities along ``self.dim``."""
        dim = self.dim if self.dim is not None else _implicit_dim("softmax", input.ndim)
        return xsoftmax.softmax(input, axis=dim)


class LinearCrossEntropyLoss(torch.nn.LinearCrossEntropyLoss):
    """``torch.nn.LinearCrossEntropyLoss`` by :func:`xsoftmax.linear_cross_entropy`.

    Same constructor and parameters as torch 2.13's (``self.linear`` holds the
    ``(C * prod(out_features), in_features)`` weight and the optional bias, so the
    ``state_dict()`` keys are torch's), plus three keyword-only extras with neutral
    defaults: ``chunk_size`` (classes per block of logits), ``z_loss`` (PaLM) and
    ``softcap`` (Gemma 2), as in :func:`xsoftmax.linear_cross_entropy`.

    With ``out_features=()`` the logits are never held in full: at most an
    ``(N, chunk_size)`` block exists, in forward and in backward. ``options`` (torch's
    ``LinearCrossEntropyOptions``) is accepted and kept for ``extra_repr`` but not used:
    xsoftmax always chunks over the classes, exactly. K-dimensional losses
    (``out_features != ()``) compute the full ``(N, C, *out_features)`` logits and
    :func:`xsoftmax.cross_entropy` on them, as torch's reference path does.

    Bad ``weight`` shapes and ``label_smoothing`` raise ``ValueError`` (torch:
    ``RuntimeError``).

    Examples
    --------
    >>> import torch
    >>> from xsoftmax import nn
    >>> _ = torch.manual_seed(0)
    >>> loss_fn = nn.LinearCrossEntropyLoss(16, 1000, bias=True)
    >>> h = torch.randn(32, 16, requires_grad=True)
    >>> loss = loss_fn(h, torch.randint(0, 1000, (32,)))
    >>> loss.backward()
    >>> sorted(loss_fn.state_dict())
    ['linear.bias', 'linear.weight']
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple[int, ...] = (),
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        reduction: str = "mean",
        weight: Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        options: Any = None,
        chunk_size: int | None = None,
        z_loss: float = 0.0,
        softcap: float | None = None,
    ) -> None:
        if weight is not None and tuple(weight.shape) != (num_classes,):
            msg = (
                f"LinearCrossEntropyLoss: `weight` must have shape ({num_classes},), "
                f"got {tuple(weight.shape)}"
            )
            raise ValueError(msg)
        if not (0.0 <= label_smoothing <= 1.0):  # also refuses NaN
            msg = (
                "LinearCrossEntropyLoss: `label_smoothing` must be in [0, 1], "
                f"got {label_smoothing!r}"
            )
            raise ValueError(msg)
        super().__init__(
            in_features,
            num_classes,
            out_features=out_features,
            bias=bias,
            device=device,
            dtype=dtype,
            reduction=reduction,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            options=options,
        )
        self.chunk_size = chunk_size
        self.z_loss = z_loss
        self.softcap = softcap

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of ``self.linear(input)`` against ``target``."""
        n_classes = self.num_classes
        logits_shape = (*input.shape[:-1], n_classes, *self.out_features)
        probabilities = tuple(target.shape) == logits_shape  # torch's test
        if probabilities and self.ignore_index is not None:
            msg = (
                "LinearCrossEntropyLoss: `ignore_index` must be None when `target` holds "
                f"class probabilities (shape {tuple(target.shape)}), got {self.ignore_index}"
            )
            raise ValueError(msg)
        ignore_index = -100 if self.ignore_index is None else self.ignore_index
        options: dict[str, Any] = {
            "weight": self.weight,
            "ignore_index": ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
            "z_loss": self.z_loss,
            "softcap": self.softcap,
        }
        if not self.out_features:
            return xsoftmax.linear_cross_entropy(
                input,
                self.linear.weight,
                target,
                linear_bias=self.linear.bias,
                chunk_size=self.chunk_size,
                **options,
            )
        if input.ndim != 2:
            msg = (
                "LinearCrossEntropyLoss: with out_features="
                f"{self.out_features}, `input` must be batched, shape (N, "
                f"{self.linear.in_features}); got {tuple(input.shape)}"
            )
            raise ValueError(msg)
        logits = self.linear(input).reshape(input.shape[0], n_classes, *self.out_features)
        return xsoftmax.cross_entropy(logits, target, axis=1, **options)

    def extra_repr(self) -> str:
        """torch's ``extra_repr``, plus the xsoftmax options that are not at their default."""
        text = super().extra_repr()
        extras = {"chunk_size": None, "z_loss": 0.0, "softcap": None}
        for name, default in extras.items():
            value = getattr(self, name)
            if value != default:
                text += f", {name}={value}"
        return text
