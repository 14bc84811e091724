"""Dask kernels: the linear loss on row blocks, computed by the workers."""
