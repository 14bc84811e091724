"""Fused kernels beside the definition, one folder per technology, and the one dispatch table.

* :mod:`.dispatch`: which path runs for a call (kind of memory, dtype, layout,
  whether a gradient is needed); one line decides each case;
* :mod:`.numba`: numba-compiled row and chunk loops on CPU memory (NumPy arrays,
  torch CPU tensors through zero-copy views), the optional ``fast`` extra;
* :mod:`.numpy_ufuncs`: the NumPy path without numba (in-place ufuncs);
* :mod:`.torch`: ``torch.autograd.Function`` per operation and the linear loss;
* :mod:`.jax`: JAX derivative rules and the ``lax.scan`` of the linear loss;
* :mod:`.dask`: the linear loss on Dask row blocks;
* :mod:`.linear_sweeps`: the eager linear sweeps (numba's chunk kernel or the definition).

The definition (:mod:`xsoftmax._definition`) stays the oracle: every kernel here is
held to it by the property tests. Nothing heavy (numba, torch, JAX) is imported
until a call needs it.
"""
