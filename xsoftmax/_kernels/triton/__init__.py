"""Triton kernels for GPU memory (torch CUDA tensors and CuPy arrays).

Imported only when a GPU array arrives (and by the interpreter tests): the
dispatch calls :mod:`xsoftmax._kernels.triton.entry`, whose functions import
triton on their first use. Nothing here imports the rest of xsoftmax.
"""
