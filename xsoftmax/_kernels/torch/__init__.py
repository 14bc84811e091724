"""torch kernels: autograd Functions with analytic derivatives, and the linear loss."""
