"""Fused kernels beside the generic implementation, one module per technology.

* :mod:`xsoftmax._kernels.cpu`: numba-compiled row kernels on CPU memory (NumPy
  arrays, torch CPU tensors through zero-copy views), an optional extra
  (``pip install 'xsoftmax[fast]'``);
* :mod:`xsoftmax._kernels.torch_autograd`: ``torch.autograd.Function`` per operation;
* :mod:`xsoftmax._kernels.jax_rules`: JAX derivative rules per operation.

The generic array-API kernels (:mod:`xsoftmax._generic`) stay the definition:
every kernel here is held to them by the property tests. Nothing heavy is
imported by this package; :mod:`xsoftmax._dispatch` decides which path runs.
"""
