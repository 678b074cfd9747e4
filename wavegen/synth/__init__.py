"""Playing a model: sampling one sample at a time (PyTorch, numba and C kernels), streaming.

Imports the layers below it: foundation, notes, data, nn.
"""
