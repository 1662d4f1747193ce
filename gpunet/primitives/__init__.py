"""Ops: one file per family, each op's NumPy reference and kernel launch side by side.

An op is a plain function on backend arrays. It asks ``backend.current()`` which path runs:
the NumPy reference (numpy backend) or a kernel from ``kernels/`` (cuda and cudasim).
"""
