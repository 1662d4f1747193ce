"""``model.summary()`` as Keras 3 prints it: the same box-drawn table (rich's heavy-head box, a rule
between rows), the same column widths and wrapping, the same totals, and ``print_fn`` called as
Keras calls it: once, with the whole text.

Keras sizes the table from ``line_length`` (default ``min(88, terminal columns - 4)``, 108 with a
"Connected to" column, +12 with ``show_trainable``) split at ``positions``, and rich then narrows
the columns evenly to fit the borders and padding; cells wrap at spaces and a word too long for
its cell ends in "…"; lines are cut at the terminal's width.
"""
import re
import shutil

__all__ = ["summary_text"]

_TOP, _HEAD_RULE, _ROW_RULE, _BOTTOM = ("┏", "━", "┳", "┓"), ("┡", "━", "╇", "┩"), ("├", "─", "┼", "┤"), \
    ("└", "─", "┴", "┘")


def _shape_text(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def memory_text(nbytes):
    """Keras's ``readable_memory_size``: two decimals in the largest unit below 1024."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1 or unit == "PB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _ratio_reduce(total, widths):
    """rich's ``ratio_reduce`` with equal ratios: take ``total`` off the widths, evenly, in order."""
    result, remaining, parts = [], total, len(widths)
    for width in widths:
        taken = min(width, round(remaining / parts))
        result.append(width - taken)
        remaining, parts = remaining - taken, parts - 1
    return result


def _cell_widths(line_length, positions):
    """Content widths of the columns: Keras's split of ``line_length``, narrowed as rich does."""
    requested, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError(f"Insufficient console width to print summary (line_length={line_length}).")
        requested.append(width)
        current += width
    padded = [w + 2 for w in requested]
    available = line_length - (len(padded) + 1)
    if sum(padded) > available:
        padded = _ratio_reduce(sum(padded) - available, padded)
    return [w - 2 for w in padded]


def _wrap(text, width):
    """rich's word wrap: break at spaces; a word longer than the cell is cut to ``width - 1`` + "…"."""
    lines, line = [], ""
    for word in re.findall(r"\s*\S+\s*", text) or [""]:
        if line and len(line) + len(word.rstrip()) > width:
            lines.append(line.rstrip())
            line = word.lstrip() if not line.strip() else word
        else:
            line += word
    lines.append(line.rstrip())
    return [l if len(l) <= width else l[:width - 1] + "…" for l in lines]


def _justify(text, width, how):
    if how == "right":
        return text.rjust(width)
    if how == "center":
        left = (width - len(text)) // 2
        return (" " * left + text).ljust(width)
    return text.ljust(width)


def _rule(parts, widths):
    left, fill, joint, right = parts
    return left + joint.join(fill * (w + 2) for w in widths) + right


def _table(header, rows, widths, alignment):
    out = [_rule(_TOP, widths), "┃" + "┃".join(f" {_justify(h, w, a)} " for h, w, a in
                                                zip(header, widths, alignment)) + "┃", _rule(_HEAD_RULE, widths)]
    for k, row in enumerate(rows):
        cells = [_wrap(text, w) for text, w in zip(row, widths)]
        for i in range(max(len(c) for c in cells)):
            out.append("│" + "│".join(f" {_justify(c[i] if i < len(c) else '', w, a)} " for c, w, a in
                                        zip(cells, widths, alignment)) + "│")
        out.append(_rule(_ROW_RULE if k < len(rows) - 1 else _BOTTOM, widths))
    if not rows:
        out.append(_rule(_BOTTOM, widths))
    return out


def _sequential_like(model):
    """Keras's test: a chain (no layer reads several tensors, no tensor feeds several layers)."""
    if not getattr(model, "_nodes", None) or type(model).__name__ == "Sequential":
        return True
    readers = {}
    for node in model._nodes:
        if len(node.inputs) > 1:
            return False
        for t in node.inputs:
            readers[id(t)] = readers.get(id(t), 0) + 1
    return all(count <= 1 for count in readers.values())


def _layer_rows(model, connections, show_trainable, expand_nested, level=0):
    made = {id(node.layer): node for node in getattr(model, "_nodes", [])}
    rows = []
    for layer in model.layers:
        node = made.get(id(layer))
        prefix = "   " * level + "└ " if level else ""
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        shape = _shape_text(node.tensor.shape) if node is not None else "?"
        row = [f"{prefix}{layer.name} ({type(layer).__name__})", shape, params]
        if connections:
            inputs = node.inputs if node is not None else []
            row.append(", ".join(f"{t.layer.name}[0][0]" for t in inputs) or "-")
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)
        if expand_nested and getattr(layer, "layers", None):
            rows += _layer_rows(layer, connections, show_trainable, True, level + 1)
    return rows


def _totals(model):
    def size(arrays):
        return sum(int(a.size) for a in arrays), sum(int(a.nbytes) for a in arrays)
    trainable, trainable_bytes = size(model.trainable_weights)
    frozen, frozen_bytes = size(model.non_trainable_weights)
    optimizer = getattr(model, "optimizer", None)
    opt_count = opt_bytes = 0
    if optimizer is not None and optimizer.built:
        from .saving.optimizer_state import keras_variables
        opt_count, opt_bytes = size([array for _, array in keras_variables(optimizer)])
    lines = [f" Total params: {trainable + frozen + opt_count:,} "
             f"({memory_text(trainable_bytes + frozen_bytes + opt_bytes)})",
             f" Trainable params: {trainable:,} ({memory_text(trainable_bytes)})",
             f" Non-trainable params: {frozen:,} ({memory_text(frozen_bytes)})"]
    if optimizer is not None and optimizer.built:
        lines.append(f" Optimizer params: {opt_count:,} ({memory_text(opt_bytes)})")
    return lines


def summary_text(model, line_length=None, positions=None, expand_nested=False, show_trainable=False,
                 layer_range=None):
    """The text Keras 3's ``model.summary()`` hands its ``print_fn`` (ends with a newline)."""
    connections = not _sequential_like(model)
    if connections:
        default, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header, alignment = ["Layer (type)", "Output Shape", "Param #", "Connected to"], ["left", "left", "right", "left"]
    else:
        default, positions = 88, positions or [0.45, 0.80, 1.0]
        header, alignment = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    if show_trainable:
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header, alignment = header + ["Trainable"], alignment + ["center"]
    columns = shutil.get_terminal_size().columns
    line_length = line_length or min(default, columns - 4)
    rows = _layer_rows(model, connections, show_trainable, expand_nested)
    if layer_range is not None:
        rows = _select(model, rows, layer_range)
    lines = [f'Model: "{model.name}"', *_table(header, rows, _cell_widths(line_length, positions), alignment),
             *_totals(model)]
    return "".join(line[:columns] + "\n" for line in lines)   # rich cuts lines at the console's width


def _select(model, rows, layer_range):
    if len(layer_range) != 2 or not all(isinstance(n, str) for n in layer_range):
        raise ValueError(f"layer_range must be a list or tuple of two layer names; received {layer_range!r}.")
    names = [layer.name for layer in model.layers]
    low = [i for i, n in enumerate(names) if re.match(layer_range[0], n)]
    high = [i for i, n in enumerate(names) if re.match(layer_range[1], n)]
    if not low or not high:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: {layer_range}")
    return rows[min(low):max(high) + 1]
