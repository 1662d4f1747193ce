"""HDF5 plumbing for ``gpunet.saving``: atomic writes, guarded reads, Keras-style string attributes.

Writes go to a temporary file next to the target and are renamed over it only once complete,
so a crash mid-write leaves the previous file as it was. Reads turn h5py's low-level errors
(truncated, corrupt, not HDF5 at all) into one ``FileFormatError`` that names the file.
"""
import contextlib
import json
import os
import uuid

import h5py
import numpy as np

# Keras splits a list attribute into name0, name1, ... past HDF5's object-header limit; each
# variable-length string costs 16 bytes there, so 2000 names stay far below it.
_NAMES_PER_CHUNK = 2000


class FileFormatError(ValueError):
    """A file that is not HDF5, is truncated or corrupt, or lacks the layout gpunet reads."""


# -- writing ------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path, overwrite=True):
    """Yield a temporary name in ``path``'s folder; once the block completes without error the
    file written there is flushed to disk and renamed onto ``path`` (removed otherwise)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save to '{path}': it is a folder.")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"'{path}' already exists and overwrite=False.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot save to '{path}': the folder '{folder}' does not exist.")
    temp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


@contextlib.contextmanager
def atomic_h5(path, overwrite=True):
    """Yield an h5py File that replaces ``path`` only when the block completes without error."""
    with atomic_path(path, overwrite) as temp:
        try:
            f = h5py.File(temp, "x")
        except OSError as error:
            raise OSError(f"Cannot save to '{os.fspath(path)}': creating a file in "
                          f"'{os.path.dirname(temp)}' failed ({error}).") from error
        with f:
            yield f


def _fsync(path):
    # The rename must not reach the disk before the data it points to.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_names(attrs, key, names):
    """A list of strings as Keras writes it: vlen strings, an empty float array when empty,
    split into ``key0, key1, ...`` when long."""
    names = [str(n) for n in names]
    if not names:
        attrs[key] = np.asarray([], dtype=np.float64)
        return
    encoding = "ascii" if all(n.isascii() for n in names) else "utf-8"
    kind = h5py.string_dtype(encoding)
    chunks = [names[i:i + _NAMES_PER_CHUNK] for i in range(0, len(names), _NAMES_PER_CHUNK)]
    if len(chunks) == 1:
        attrs.create(key, np.array(names, dtype=object), dtype=kind)
        return
    for index, chunk in enumerate(chunks):
        attrs.create(f"{key}{index}", np.array(chunk, dtype=object), dtype=kind)


def to_json(value, what):
    """JSON text of a config; NumPy scalars become numbers, anything else unknown is a clear error."""
    def plain(item):
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        if isinstance(item, np.dtype):
            return item.name
        raise TypeError(f"Cannot save {what}: it holds {item!r} ({type(item).__name__}), which has "
                        f"no JSON form. Give the layer or object a get_config() of plain values.")
    return json.dumps(value, default=plain)


# -- reading ------------------------------------------------------------------------------
@contextlib.contextmanager
def open_h5(path):
    """Yield ``path`` opened read-only. Errors h5py raises inside the block (damaged objects)
    and on opening (not HDF5, truncated) come out as ``FileFormatError`` naming the file.

    The block should only read the file: any OSError, KeyError, RuntimeError, TypeError or
    ValueError raised in it is taken for damage.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: '{path}'.")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise FileFormatError(f"Cannot read '{path}': {_why_unreadable(path, error)}") from error
    try:
        with f:
            yield f
    except FileFormatError:
        raise
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as error:
        # Damaged metadata surfaces from h5py as any of these (bad dtypes, names, addresses).
        raise FileFormatError(f"Cannot read '{path}': the file is damaged (h5py: {error}). "
                              f"It may be truncated or corrupt; save it again.") from error


def _why_unreadable(path, error):
    with open(path, "rb") as raw:
        head = raw.read(8)
    if head[:4] == b"PK\x03\x04":
        return ("it is a zip archive (Keras's .keras format), not HDF5: open it with "
                "gn.models.load_model(path).")
    if head != b"\x89HDF\r\n\x1a\n":
        return f"it is not an HDF5 file (it starts with {head!r}, not the HDF5 signature)."
    return f"the HDF5 file is truncated or corrupt (h5py: {error})."


def decode(value):
    """A str from h5py's str, bytes or NumPy bytes."""
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def read_text(attrs, key):
    """A string attribute (bytes or str), or None when absent."""
    if key not in attrs:
        return None
    value = attrs[key]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    return decode(value)


def read_names(attrs, key):
    """A list attribute written by :func:`write_names` or by Keras (also ``key0, key1, ...`` chunks)."""
    if key in attrs:
        values = list(np.atleast_1d(attrs[key]))
    else:
        values, index = [], 0
        while f"{key}{index}" in attrs:
            values.extend(np.atleast_1d(attrs[f"{key}{index}"]))
            index += 1
    # An empty list is stored as a float array of shape (0,), so only non-empty lists hold strings.
    return [decode(v) for v in values]


def read_array(dataset, where):
    """The dataset's values as a NumPy array (a scalar dataset gives a 0-d array)."""
    if not isinstance(dataset, h5py.Dataset):
        raise FileFormatError(f"{where} should be a dataset of numbers; found a {type(dataset).__name__}.")
    return np.array(dataset[()])
