"""Where each kernel tap of a conv's input gradient lands, for the numpy backend.

The input gradient (and so the transposed conv) is computed one tap at a time: ``dy @ w[i, j].T``
lands on the input positions ``base + stride * o``. Per axis this module turns that into a pair of
slices (where in x, which outputs o), keeping only positions inside x, so no padded buffer and no
final crop are needed. It also orders the taps so that no zero-filled gradient is needed when it
can be avoided: the positions of one residue modulo the stride (a *phase*) are reached by a subset
of the taps; a tap that reaches its whole phase is written first, the others are added, and only
phases that no tap reaches whole are zeroed.
"""

__all__ = ["tap_range", "plan_taps"]


def tap_range(base, stride, out_size, in_size):
    """Where one tap lands on one axis: ``(x slice, dy slice)``, or None if nowhere inside x.

    Output position ``o`` (``0 <= o < out_size``) reads input ``base + stride * o``; only
    ``0 <= base + stride * o < in_size`` counts.
    """
    first = max(0, -(base // stride))
    last = min(out_size, (in_size - 1 - base) // stride + 1) if in_size - 1 - base >= 0 else 0
    if first >= last:
        return None
    start = base + stride * first
    return slice(start, start + stride * (last - first - 1) + 1, stride), slice(first, last)


def _covers_phase(landing, stride, size):
    """True when a tap's x slice holds every position of its residue class in ``range(size)``."""
    start, stop = landing.start, landing.stop
    residue = start % stride
    return start == residue and len(range(start, stop, stride)) == -(-(size - residue) // stride)


def plan_taps(row_bases, col_bases, strides, out_hw, in_hw):
    """The order in which to apply the taps of an input gradient, and what to zero first.

    ``row_bases[i]`` / ``col_bases[j]``: the input position tap ``(i, j)`` reads for output 0.
    Returns ``(taps, zero_phases)``: ``taps`` a list of ``(i, j, x_index, dy_index, assign)``
    where the indexes are ``(slice, slice)`` over height and width and ``assign`` says the tap
    writes (first in its phase) rather than adds; ``zero_phases`` a list of ``(row residue,
    column residue)`` whose positions must be zeroed before any tap is added.
    """
    rows = [tap_range(b, strides[0], out_hw[0], in_hw[0]) for b in row_bases]
    cols = [tap_range(b, strides[1], out_hw[1], in_hw[1]) for b in col_bases]
    by_phase = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if r is not None and c is not None:
                key = (r[0].start % strides[0], c[0].start % strides[1])
                by_phase.setdefault(key, []).append((i, j, (r[0], c[0]), (r[1], c[1])))
    taps, zero_phases = [], []
    for phase in ((a, b) for a in range(strides[0]) for b in range(strides[1])):
        group = by_phase.get(phase, [])
        whole = [t for t in group if _covers_phase(t[2][0], strides[0], in_hw[0])
                 and _covers_phase(t[2][1], strides[1], in_hw[1])]
        if not whole:
            zero_phases.append(phase)
        first = whole[0] if whole else None
        if first is not None:
            taps.append((*first, True))
        taps.extend((*t, False) for t in group if t is not first)
    return taps, zero_phases
