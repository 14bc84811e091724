"""numba-compiled loops on CPU memory (the ``fast`` extra): rows and linear chunks."""
