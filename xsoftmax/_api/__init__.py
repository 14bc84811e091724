"""The public functions: signatures, docstrings, one call into the contract and one into the dispatch.

Each public function checks and prepares its arguments once
(:mod:`xsoftmax._contract`), then asks :mod:`xsoftmax._kernels.dispatch` for the
result. ``xsoftmax/__init__.py`` re-exports them.
"""
