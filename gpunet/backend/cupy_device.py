"""The one module that imports CuPy. It records whether CuPy can run and, if not, why.

On a machine without a GPU ``import cupy`` succeeds but the first device call raises
``CUDARuntimeError`` (cudaErrorInsufficientDriver or no device), so usability is decided
by a real device query, caught, not by the import alone.
"""
_state = None


def _probe():
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy not importable: {type(exc).__name__}: {exc}".split("\n")[0]
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy sees no GPU: {type(exc).__name__}: {exc}".split("\n")[0]
    if count < 1:
        return None, "CuPy sees no GPU: device count is 0"
    return cupy, ""


def _ensure():
    global _state
    if _state is None:
        _state = _probe()
    return _state


def usable():
    return _ensure()[0] is not None


def why_unusable():
    return _ensure()[1] or "CuPy and a GPU are available"


def cupy():
    """The cupy module; raises a clear error when it cannot run here."""
    module, why = _ensure()
    if module is None:
        raise RuntimeError(f"The cuda backend needs CuPy and a visible GPU: {why}. "
                           "Install gpunet[cuda12] or gpunet[cuda13] on a GPU machine, "
                           "or use set_backend('numpy') / 'cudasim'.")
    return module
