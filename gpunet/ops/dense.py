"""Fully connected layer: ``y = x @ w + b``, forward and backward side by side.

Shapes: x (N, in), w (in, out) as Keras stores a Dense kernel, b (out,) or None, y (N, out).
Higher-rank inputs are the layer's business (it folds the leading axes into N).
"""
import numpy as np


def dense_forward(x, w, b=None):
    """``x @ w (+ b)``: x (N, in), w (in, out), b (out,) or None -> y (N, out), in x's dtype."""
    y = x @ w
    if b is not None:
        y += b
    return y


def dense_backward(dy, x, w, need_dx=True, need_db=True):
    """Gradients of :func:`dense_forward` from dy (N, out) and the saved input x (N, in).

    Returns ``(dx, dw, db)``: dx (N, in) or None when ``need_dx`` is False (a first layer
    needs no input gradient), dw (in, out), db (out,) or None when ``need_db`` is False.
    Every gradient is written, not accumulated.
    """
    dx = dy @ w.T if need_dx else None
    dw = x.T @ dy
    # A ones-vector product reduces over the batch with the same BLAS call a GPU would use.
    db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy if need_db else None
    return dx, dw, db
