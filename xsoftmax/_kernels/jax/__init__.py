"""JAX kernels: custom derivative rules, and the linear loss as a ``lax.scan``."""
