"""The numpy backend's speed machinery gives the same answers as the plain NumPy it replaces.

Correctness only: the thread pool, workspace buffers, threaded passes, the tap plan of the conv
input gradient, the max-pooling fast paths, the first layer's skipped input gradient and the
in-place ReLU of Conv2D / Dense. Timings live in benchmarks/, never in tests.
"""
import threading
import time

import numpy as np
import pytest

import gpunet as gn
from gpunet.primitives import conv, conv_geometry, parallel, passes, pool, workspace
from checks import assert_close

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference


@pytest.fixture
def split_everything(monkeypatch):
    """Two threads and no minimum size, so that even small test arrays are split."""
    previous = parallel.get_num_threads()
    parallel.set_num_threads(2)
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    yield
    parallel.set_num_threads(previous)


# -- parallel ---------------------------------------------------------------------------------

@pytest.mark.parametrize("count, parts", [(10, 3), (2, 5), (7, 7), (1, 2), (100, 2)])
def test_chunks_cover_the_range_in_near_equal_slices(count, parts):
    pieces = parallel.chunks(count, parts)
    covered = [i for piece in pieces for i in range(count)[piece]]
    assert covered == list(range(count))
    sizes = [piece.stop - piece.start for piece in pieces]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_run_visits_every_index_once_on_two_threads(split_everything):
    seen, threads, lock = [], set(), threading.Lock()

    def record(part):
        with lock:
            seen.extend(range(part.start, part.stop))
            threads.add(threading.get_ident())
    parallel.run(record, 9)
    assert sorted(seen) == list(range(9))
    assert len(threads) == 2


def test_run_is_serial_for_small_work_and_inside_a_chunk(split_everything, monkeypatch):
    calls = []
    monkeypatch.setattr(parallel, "MIN_WORK", 100)
    parallel.run(calls.append, 10, work=99)
    assert calls == [slice(0, 10)]
    inner = []
    parallel.run(lambda part: parallel.run(inner.append, 4, work=1000), 2, work=1000)
    assert sorted((s.start, s.stop) for s in inner) == [(0, 4), (0, 4)]


def test_run_raises_what_a_chunk_raised(split_everything):
    def fail_on_second_half(part):
        if part.start > 0:
            raise KeyError("second half")
    with pytest.raises(KeyError, match="second half"):
        parallel.run(fail_on_second_half, 4)


def test_run_waits_for_every_chunk_when_one_fails(split_everything):
    """A chunk that fails at once must not let run return while another still writes."""
    parallel.set_num_threads(3)
    finished = []

    def second_fails_third_is_slow(part):
        if part.start == 1:
            raise ValueError("second chunk")
        if part.start == 2:
            time.sleep(0.2)
        finished.append(part.start)
    with pytest.raises(ValueError, match="second chunk"):
        parallel.run(second_fails_third_is_slow, 3)
    assert sorted(finished) == [0, 2]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_non_positive_ints(bad):
    with pytest.raises(ValueError, match="positive int"):
        parallel.set_num_threads(bad)


# -- workspace ----------------------------------------------------------------------------------

def test_workspace_reuses_one_buffer_per_tag_and_grows():
    workspace.clear()
    a = workspace.buffer("test.a", (4, 5), np.float32)
    again = workspace.buffer("test.a", (2, 10), np.float32)
    other = workspace.buffer("test.b", (4, 5), np.float32)
    assert a.shape == (4, 5) and again.shape == (2, 10) and a.flags.c_contiguous
    assert np.shares_memory(a, again) and not np.shares_memory(a, other)
    bigger = workspace.buffer("test.a", (30,), np.float32)
    assert bigger.shape == (30,) and not np.shares_memory(a, bigger)
    as64 = workspace.buffer("test.a", (4, 5), np.float64)
    assert as64.dtype == np.float64 and not np.shares_memory(as64, bigger)
    assert workspace.nbytes() >= (30 + 20) * 4 + 20 * 8
    workspace.clear()
    assert workspace.nbytes() == 0


def test_workspace_buffers_are_per_thread():
    main = workspace.buffer("test.thread", (8,), np.float32)
    box = []
    worker = threading.Thread(target=lambda: box.append(workspace.buffer("test.thread", (8,), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(main, box[0])


# -- passes -------------------------------------------------------------------------------------

def test_passes_match_their_numpy_one_liners(split_everything, rng):
    base = rng.standard_normal((5, 6, 7, 4)).astype(np.float32)
    strided = base[:, ::2, 1:, :]
    dst = np.zeros((5, 3, 6, 4), np.float32)
    passes.copy_into(dst, strided)
    assert_close(dst, strided, rtol=0, atol=0)
    passes.add_into(dst, strided)
    assert_close(dst, 2 * strided, rtol=0, atol=0)
    b = rng.standard_normal(4).astype(np.float32)
    y = base.copy()
    passes.add_bias(y, b)
    assert_close(y, base + b, rtol=0, atol=0)
    view = base.copy()[:, ::2]            # not viewable as rows: falls back to y += b
    expected = view + b
    passes.add_bias(view, b)
    assert_close(view, expected, rtol=0, atol=0)
    z = base.copy()
    passes.relu_inplace(z)
    assert_close(z, np.maximum(base, 0), rtol=0, atol=0)
    dy = rng.standard_normal(base.shape).astype(np.float32)
    assert_close(passes.relu_backward(dy, base), dy * (base > 0), rtol=0, atol=0)
    assert_close(passes.relu_backward(dy[:, ::2], base[:, ::2]), dy[:, ::2] * (base[:, ::2] > 0),
                 rtol=0, atol=0)


# -- conv input gradient: tap plan ----------------------------------------------------------------

def _naive_input_gradient(dy, w, x_shape, strides, pads, dilation):
    n, h, wd, _ = x_shape
    dx = np.zeros(x_shape)
    for o in range(dy.shape[1]):
        for p in range(dy.shape[2]):
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    r = o * strides[0] + i * dilation[0] - pads[0][0]
                    c = p * strides[1] + j * dilation[1] - pads[1][0]
                    if 0 <= r < h and 0 <= c < wd:
                        dx[:, r, c, :] += dy[:, o, p, :] @ w[i, j].T
    return dx


@pytest.mark.parametrize("size, kernel, strides, dilation, pads", [
    ((6, 7), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),      # "same": the centre tap writes all of dx
    ((6, 7), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),      # 1x1: one GEMM straight into dx
    ((7, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 0))),      # four phases, some without a whole tap
    ((8, 8), (2, 3), (3, 2), (1, 1), ((0, 0), (0, 1))),      # stride > kernel: untouched cells stay 0
    ((9, 7), (3, 2), (2, 1), (2, 2), ((2, 2), (1, 0))),      # dilation with stride
    ((7, 7), (3, 3), (1, 2), (1, 1), ((-1, 0), (2, -1))),    # negative padding crops
])
def test_conv_input_gradient_matches_a_naive_scatter(split_everything, rng, size, kernel, strides,
                                                     dilation, pads):
    x_shape = (2, *size, 3)
    out = conv_geometry.conv_output_shape(size, kernel, strides, pads, dilation)
    w = rng.standard_normal((*kernel, 3, 4))
    dy = rng.standard_normal((2, *out, 4))
    dx = conv.conv2d_backward_input(dy, w, x_shape, strides, pads, dilation)
    assert dx.shape == x_shape and dx.flags.c_contiguous and dx.dtype == np.float64
    assert_close(dx, _naive_input_gradient(dy, w, x_shape, strides, pads, dilation), rtol=1e-10, atol=1e-10)


def test_conv_forward_of_few_channels_copies_per_tap(split_everything, rng):
    x = rng.standard_normal((3, 6, 5, 1))
    w = rng.standard_normal((3, 3, 1, 2))
    pads = ((1, 1), (1, 1))
    y = conv.conv2d_forward(x, w, None, (1, 1), pads, (1, 1))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = sum(xp[:, i:i + 6, j:j + 5, :] @ w[i, j] for i in range(3) for j in range(3))
    assert_close(y, expected, rtol=1e-12, atol=1e-12)


# -- max pooling fast paths -------------------------------------------------------------------------

def _naive_max_pool(x, pool_size, strides, padding):
    n, h, w, c = x.shape
    (oh, pt, _), (ow, pl, _) = (pool.pool_geometry(s, k, st, padding)
                                for s, k, st in zip((h, w), pool_size, strides))
    y, arg = np.empty((n, oh, ow, c)), np.empty((n, oh, ow, c), np.int32)
    for index in np.ndindex(n, oh, ow, c):
        b, i, j, ch = index
        best = where = None
        for di in range(pool_size[0]):
            for dj in range(pool_size[1]):
                r, q = i * strides[0] - pt + di, j * strides[1] - pl + dj
                if 0 <= r < h and 0 <= q < w:
                    v = x[b, r, q, ch]
                    if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                        best, where = v, r * w + q
        y[index], arg[index] = best, where
    return y, arg


@pytest.mark.parametrize("shape, pool_size, strides, padding", [
    ((2, 6, 8, 3), (2, 2), (2, 2), "valid"),
    ((2, 7, 9, 3), (2, 2), (2, 2), "valid"),
    ((2, 7, 7, 3), (3, 3), (2, 2), "same"),
    ((2, 5, 6, 3), (3, 2), (1, 1), "valid"),
    ((2, 8, 8, 3), (2, 2), (3, 3), "same"),
])
def test_max_pool_fast_paths_match_a_naive_scan(split_everything, rng, shape, pool_size, strides, padding):
    x = np.round(rng.standard_normal(shape), 1)          # rounding makes ties
    x[0, 0, 0, 0] = np.nan
    x[1, :3, :3, 1] = -np.inf
    y, argmax = pool.max_pool2d_forward(x, pool_size, strides, padding)
    y_ref, arg_ref = _naive_max_pool(x, pool_size, strides, padding)
    np.testing.assert_array_equal(y, y_ref)            # NaN where the reference has NaN
    np.testing.assert_array_equal(argmax, arg_ref)
    dy = rng.standard_normal(y.shape)
    fast = pool.max_pool2d_backward(dy, argmax, shape, pool_size, strides, padding)
    reference = pool.max_pool2d_backward(dy, argmax, shape)        # scatter by argmax
    assert fast.flags.c_contiguous and fast.dtype == dy.dtype
    assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    dy[0, 0, 0, 0] = np.inf                                         # no 0 * inf in other cells
    np.testing.assert_allclose(pool.max_pool2d_backward(dy, argmax, shape, pool_size, strides, padding),
                               pool.max_pool2d_backward(dy, argmax, shape), rtol=1e-12)


# -- layers and the training step -------------------------------------------------------------------

def _small_cnn(dtype="float64"):
    return gn.Sequential([
        gn.Input((6, 6, 2), dtype=dtype),
        gn.layers.Conv2D(3, 3, padding="same", activation="relu", dtype=dtype),
        gn.layers.Flatten(dtype=dtype),
        gn.layers.Dense(4, activation="relu", dtype=dtype),
        gn.layers.Dense(2, dtype=dtype)])


def test_training_step_skips_the_first_layers_input_gradient_only(rng, monkeypatch):
    model = _small_cnn()
    x = rng.standard_normal((5, 6, 6, 2))
    first = model.layers[0]
    calls = []
    original = conv.conv2d_backward_input
    monkeypatch.setattr(conv, "conv2d_backward_input", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    dy = rng.standard_normal((5, 2))
    model.forward(x, training=True)
    dx = model.backward(dy)
    full_grads = [g.copy() for g in model.grads]
    assert dx.shape == x.shape and calls == [1]
    model.forward(x, training=True)
    model._train_backward(dy, from_logits=False)
    assert calls == [1] and first.needs_input_gradient
    for got, want in zip(model.grads, full_grads):
        assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fused_relu_matches_a_separate_relu_layer_and_spares_inputs(rng):
    fused = gn.layers.Conv2D(3, 3, activation="relu", dtype="float64")
    plain = gn.layers.Conv2D(3, 3, dtype="float64")
    relu = gn.layers.ReLU(dtype="float64")
    x = rng.standard_normal((2, 5, 5, 2))
    fused.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(fused.get_weights())
    y = fused.forward(x, training=True)
    assert_close(y, relu.forward(plain.forward(x, training=True)), rtol=0, atol=0)
    dy = rng.standard_normal(y.shape)
    assert_close(fused.backward(dy), plain.backward(relu.backward(dy)), rtol=1e-12, atol=1e-12)
    layer = gn.layers.Activation("relu", dtype="float64")
    kept = x.copy()
    layer.forward(x)
    assert_close(x, kept, rtol=0, atol=0)           # an Activation layer never clamps its input


def test_relu_then_max_pool_masks_the_pooled_gradient_with_the_same_result(rng):
    def build():
        inputs = gn.Input((6, 6, 2), dtype="float64")
        z = gn.layers.Conv2D(3, 3, padding="same", activation="relu", dtype="float64")(inputs)
        pooled = gn.layers.MaxPooling2D(dtype="float64")(z)
        side = gn.layers.Conv2D(2, 1, activation="relu", dtype="float64")(pooled)   # read twice: no fusion
        both = gn.layers.Concatenate(dtype="float64")([gn.layers.MaxPooling2D(dtype="float64")(side),
                                                       gn.layers.MaxPooling2D(dtype="float64")(side)])
        return gn.Model(inputs, gn.layers.Dense(2, dtype="float64")(gn.layers.Flatten(dtype="float64")(both)))
    fused, plain = build(), build()
    plain.set_weights(fused.get_weights())
    plain._relu_pools = []
    assert [(type(a).__name__, type(b).__name__) for a, b in fused._relu_pools] == [("Conv2D", "MaxPooling2D")]
    x = np.round(rng.standard_normal((4, 6, 6, 2)), 1)
    dy = rng.standard_normal((4, 2))
    fused.forward(x, training=True)
    dx_fused = fused.backward(dy)
    plain.forward(x, training=True)
    dx_plain = plain.backward(dy)
    assert_close(dx_fused, dx_plain, rtol=1e-12, atol=1e-12)
    for got, want in zip(fused.grads, plain.grads):
        assert_close(got, want, rtol=1e-12, atol=1e-12)
    producer, pool_layer = fused._relu_pools[0]
    assert not producer.relu_mask_applied and not pool_layer.apply_relu_mask


@pytest.mark.parametrize("kernel, strides, pads", [((1, 1), (1, 1), ((0, 0), (0, 0))),   # x used in place
                                                   ((3, 3), (1, 1), ((1, 1), (1, 1))),   # copied + ones
                                                   ((2, 3), (2, 1), ((0, 1), (1, 1)))])
def test_conv_bias_through_the_gemm_matches_a_separate_sum(rng, kernel, strides, pads):
    x = rng.standard_normal((2, 5, 6, 3))
    w, b = rng.standard_normal((*kernel, 3, 4)), rng.standard_normal(4)
    y = conv.conv2d_forward(x, w, b, strides, pads, (1, 1))
    assert_close(y, conv.conv2d_forward(x, w, None, strides, pads, (1, 1)) + b, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dw, db = conv.conv2d_backward_filter(dy, x, w.shape, strides, pads, (1, 1))
    assert_close(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12)
    assert_close(dw, conv._filter_gradient(dy, x, w.shape, strides, pads, (1, 1)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, strides, crops", [((3, 3), (2, 2), ((1, 0), (1, 0))),
                                                    ((1, 1), (1, 1), ((0, 0), (0, 0))),
                                                    ((2, 3), (2, 1), ((0, 0), (1, 1)))])
def test_transposed_conv_backward_in_one_call_matches_its_two_ops(rng, kernel, strides, crops):
    from gpunet.primitives import conv_fused
    x, w = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((*kernel, 6, 3))
    y = conv.conv2d_transpose_forward(x, w, None, strides, crops, (1, 1))
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv_fused.conv2d_transpose_backward(dy, x, w, strides, crops, (1, 1))
    assert_close(dx, conv.conv2d_transpose_backward_input(dy, w, x.shape, strides, crops, (1, 1)),
                 rtol=1e-12, atol=1e-12)
    dw_ref, db_ref = conv.conv2d_transpose_backward_filter(dy, x, w.shape, strides, crops, (1, 1))
    assert_close(dw, dw_ref, rtol=1e-12, atol=1e-12)
    assert_close(db, db_ref, rtol=1e-12, atol=1e-12)
    assert conv_fused.conv2d_transpose_backward(dy, x, w, strides, crops, (1, 1), need_dx=False)[0] is None


@pytest.mark.parametrize("kernel, use_bias, padding", [(3, True, "same"), (1, True, "valid"), (3, False, "valid")])
def test_conv_layer_reuses_its_forward_patches_for_the_kernel_gradient(rng, kernel, use_bias, padding):
    layer = gn.layers.Conv2D(4, kernel, padding=padding, use_bias=use_bias, dtype="float64")
    x = rng.standard_normal((2, 5, 6, 3))
    layer.build(x.shape)
    y = layer.forward(x, training=True)
    assert layer._saved is not None
    pads = layer._pads
    assert_close(y, conv.conv2d_forward(x, layer.kernel, layer.bias, (1, 1), pads, (1, 1)), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert layer._saved is None
    assert_close(dx, conv.conv2d_backward_input(dy, layer.kernel, x.shape, (1, 1), pads, (1, 1)),
                 rtol=1e-12, atol=1e-12)
    dw, db = conv.conv2d_backward_filter(dy, x, layer.kernel.shape, (1, 1), pads, (1, 1))
    assert_close(layer.grads[0], dw, rtol=1e-12, atol=1e-12)
    assert len(layer.grads) == (2 if use_bias else 1)
    if use_bias:
        assert_close(layer.grads[1], db, rtol=1e-12, atol=1e-12)
    layer.forward(x, training=False)
    assert layer._saved is None                      # inference keeps nothing


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_gets_a_working_pool(split_everything):
    import os
    parallel.run(lambda part: None, 4)                 # the parent's pool exists now
    pid = os.fork()
    if pid == 0:                                       # child: must not hang on the parent's pool
        import signal
        signal.alarm(20)                               # a hang kills the child: a failure, not a stuck run
        seen = []
        parallel.run(lambda part: seen.append(part), 4)
        os._exit(0 if sorted(s.start for s in seen) == [0, 2] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
