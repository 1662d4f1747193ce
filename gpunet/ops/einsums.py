"""``einsum`` as keras.ops has it, composed of ops that run kernels: per operand the letters no one
else needs are summed out (the reduce kernel), then operands are contracted pairwise, left to
right, each pair as one batched ``matmul`` (the GEMM kernels) between transposes and reshapes.
The tape records those ops, so the gradient is theirs.

    ops.einsum("bij,bjk->bik", a, b)      ops.einsum("...i,i->...", x, w)      ops.einsum("ij->ji", x)

A letter repeated within one operand (a diagonal, "ii->i") is refused with an error.
"""
import string

import numpy as np

from ..autodiff import as_tensor
from .array import matmul, reshape, transpose
from .core import cast
from .math import sum as _sum

__all__ = ["einsum"]

_SPARE = [c for c in string.ascii_uppercase]   # letters that stand for the axes "..." covers


def _parse(subscripts, tensors):
    """(input letter strings, output letter string), "..." replaced by spare capital letters."""
    text = subscripts.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(tensors):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands; received {len(tensors)}.")
    dots = max([t.ndim - len(term.replace("...", "")) for term, t in zip(terms, tensors) if "..." in term], default=0)
    spare = "".join(_SPARE[:dots])
    expanded = []
    for term, t in zip(terms, tensors):
        if "..." in term:
            own = t.ndim - len(term.replace("...", ""))
            term = term.replace("...", spare[dots - own:])
        if len(term) != t.ndim or not all(c.isalpha() for c in term):
            raise ValueError(f"einsum: subscripts {term!r} do not match an operand of shape {t.shape}.")
        if len(set(term)) != len(term):
            raise NotImplementedError(f"einsum: a letter repeated within one operand ({term!r}: a diagonal) is not "
                                      "supported.")
        expanded.append(term)
    if arrow:
        output = output.replace("...", spare)
    else:   # implicit: the "..." axes, then the letters used once, in alphabetical order
        letters = "".join(expanded)
        output = spare + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in spare))
    missing = [c for c in output if c not in "".join(expanded)]
    if missing:
        raise ValueError(f"einsum: output letters {missing} of {subscripts!r} name no input axis.")
    return expanded, output


def _sizes(terms, tensors):
    sizes = {}
    for term, t in zip(terms, tensors):
        for c, s in zip(term, t.shape):
            if sizes.setdefault(c, s) != s:
                raise ValueError(f"einsum: letter {c!r} has sizes {sizes[c]} and {s} in different operands.")
    return sizes


def _reduce_to(t, term, keep):
    """``t`` (letters ``term``) summed over the letters not in ``keep``."""
    drop = tuple(i for i, c in enumerate(term) if c not in keep)
    if not drop:
        return t, term
    return _sum(t, axis=drop), "".join(c for c in term if c in keep)


def _permuted(t, term, order):
    return t if term == order else transpose(t, tuple(term.index(c) for c in order))


def _contract(a, ta, b, tb, keep, sizes):
    """The product of ``a`` and ``b`` summed over their shared letters not in ``keep``: one matmul
    of (batch, left, inner) by (batch, inner, right); returns it and its letters."""
    batch = "".join(c for c in ta if c in tb and c in keep)
    inner = "".join(c for c in ta if c in tb and c not in keep)
    left = "".join(c for c in ta if c not in tb)
    right = "".join(c for c in tb if c not in ta)
    size = lambda letters: int(np.prod([sizes[c] for c in letters], dtype=np.int64))  # noqa: E731
    a2 = reshape(_permuted(a, ta, batch + left + inner), (size(batch), size(left), size(inner)))
    b2 = reshape(_permuted(b, tb, batch + inner + right), (size(batch), size(inner), size(right)))
    out = matmul(a2, b2)
    letters = batch + left + right
    return reshape(out, tuple(sizes[c] for c in letters)), letters


def einsum(subscripts, *operands):
    """Einstein summation over ``operands`` by ``subscripts`` (NumPy's notation, "..." and the
    implicit output included). Float inputs keep their dtype (integers give float32)."""
    tensors = [as_tensor(x, "einsum") for x in operands]
    tensors = [t if t.dtype.kind == "f" or t.dtype.name == "bfloat16" else cast(t, "float32") for t in tensors]
    terms, output = _parse(subscripts, tensors)
    sizes = _sizes(terms, tensors)
    current, letters = None, ""
    for k, (t, term) in enumerate(zip(tensors, terms)):
        later = output + "".join(terms[k + 1:])
        t, term = _reduce_to(t, term, later + letters)
        if current is None:
            current, letters = t, term
            continue
        current, letters = _contract(current, letters, t, term, later, sizes)
        current, letters = _reduce_to(current, letters, later)
    current, letters = _reduce_to(current, letters, output)
    return _permuted(current, letters, output)
