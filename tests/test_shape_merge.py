"""Zero padding, upsampling, concatenation and addition: ops (values, gradients) and layers."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward
from gpunet import layers
from gpunet.primitives import shape as ops

PAD_CASES = [
    ((2, 3, 4, 2), ((1, 1), (1, 1)), (2, 5, 6, 2)),
    ((1, 2, 5, 1), ((0, 2), (3, 0)), (1, 4, 8, 1)),
    ((1, 3, 3, 2), ((0, 0), (0, 0)), (1, 3, 3, 2)),
]


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("x_shape, padding, out_shape", PAD_CASES)
def test_zero_pad_values_and_gradient(rng, x_shape, padding, out_shape):
    x = rng.standard_normal(x_shape)
    y = ops.zero_pad2d_forward(x, padding)
    assert y.shape == out_shape
    (top, _), (left, _) = padding
    assert_close(y[:, top:top + x_shape[1], left:left + x_shape[2]], x, rtol=0, atol=0)
    assert np.abs(y).sum() == pytest.approx(np.abs(x).sum())   # everything else is zero
    check_backward(lambda a: ops.zero_pad2d_forward(a, padding),
                   lambda dy: ops.zero_pad2d_backward(dy, padding), [x])


UPSAMPLE_CASES = [((2, 3, 2, 2), (2, 2)), ((1, 2, 3, 1), (1, 3)), ((1, 3, 1, 2), (3, 2)), ((1, 1, 1, 1), (2, 2))]


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("x_shape, size", UPSAMPLE_CASES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample_shape_and_gradient(rng, x_shape, size, interpolation):
    x = rng.standard_normal(x_shape)
    y = ops.upsample2d_forward(x, size, interpolation)
    n, h, w, c = x_shape
    assert y.shape == (n, h * size[0], w * size[1], c) and y.dtype == np.float64
    check_backward(lambda a: ops.upsample2d_forward(a, size, interpolation),
                   lambda dy: ops.upsample2d_backward(dy, size, interpolation), [x])


def test_upsample_nearest_repeats_pixels(rng):
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    y = ops.upsample2d_forward(x, (2, 3), "nearest")
    assert_close(y, np.repeat(np.repeat(x, 2, axis=1), 3, axis=2), rtol=0, atol=0)
    assert y.dtype == np.float32 and y.flags.c_contiguous


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_upsample_bilinear_half_pixel_values():
    # Output pixel o samples input coordinate (o + 0.5) / s - 0.5, clamped to the edge pixels.
    row = np.array([0.0, 1.0, 3.0]).reshape(1, 1, 3, 1)
    y2 = ops.upsample2d_forward(row, (1, 2), "bilinear").ravel()
    assert_close(y2, [0.0, 0.25, 0.75, 1.5, 2.5, 3.0], rtol=0, atol=1e-12)
    y3 = ops.upsample2d_forward(row.reshape(1, 3, 1, 1), (3, 1), "bilinear").ravel()
    assert_close(y3, [0, 0, 1 / 3, 2 / 3, 1, 5 / 3, 7 / 3, 3, 3], rtol=0, atol=1e-12)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_upsample_bilinear_is_separable_outer_product():
    col, row = np.array([1.0, 2.0]), np.array([0.0, 4.0, 2.0])
    x = (col[:, None] * row[None, :]).reshape(1, 2, 3, 1)
    y = ops.upsample2d_forward(x, (2, 2), "bilinear")[0, :, :, 0]
    up_col = ops.upsample2d_forward(col.reshape(1, 2, 1, 1), (2, 1), "bilinear").ravel()
    up_row = ops.upsample2d_forward(row.reshape(1, 1, 3, 1), (1, 2), "bilinear").ravel()
    assert_close(y, np.outer(up_col, up_row), rtol=1e-12, atol=1e-12)


def test_upsample_rejects_unknown_interpolation():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        ops.upsample2d_forward(np.zeros((1, 2, 2, 1)), (2, 2), "bicubic")


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("shapes, axis", [
    ([(2, 3, 3, 1), (2, 3, 3, 2)], -1),
    ([(1, 2, 3, 2), (1, 1, 3, 2), (1, 3, 3, 2)], 1),
    ([(3, 2), (3, 4)], 1),
])
def test_concat_values_and_gradient(rng, shapes, axis):
    xs = [rng.standard_normal(s) for s in shapes]
    sizes = [s[axis] for s in shapes]
    y = ops.concat_forward(xs, axis)
    assert y.shape[axis] == sum(sizes)
    pieces = ops.concat_backward(y, sizes, axis)
    for piece, x in zip(pieces, xs):
        assert_close(piece, x, rtol=0, atol=0, what="split piece")
        assert piece.flags.c_contiguous
    check_backward(lambda *a: ops.concat_forward(list(a), axis),
                   lambda dy: ops.concat_backward(dy, sizes, axis), xs)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("count", [1, 2, 3])
def test_add_values_and_gradient(rng, count):
    xs = [rng.standard_normal((2, 3, 2, 2)) for _ in range(count)]
    assert_close(ops.add_forward(xs), sum(xs), rtol=1e-12, atol=1e-12)
    check_backward(lambda *a: ops.add_forward(list(a)), lambda dy: ops.add_backward(dy, count), xs)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_add_does_not_touch_inputs_and_gradients_are_independent():
    a, b = np.ones((2, 2)), np.full((2, 2), 2.0)
    ops.add_forward([a, b])
    assert a.tolist() == [[1, 1], [1, 1]]
    grads = ops.add_backward(np.ones((2, 2)), 3)
    grads[1] += 5
    assert grads[0].tolist() == grads[2].tolist() == [[1, 1], [1, 1]]


# -- layers ---------------------------------------------------------------------------------

@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("kwargs, in_shape, out_shape", [
    (dict(), (3, 4, 2), (6, 8, 2)),
    (dict(size=3), (2, 2, 1), (6, 6, 1)),
    (dict(size=(1, 2), interpolation="bilinear"), (5, 3, 4), (5, 6, 4)),
])
def test_upsampling_layer(rng, kwargs, in_shape, out_shape):
    layer = layers.UpSampling2D(**kwargs, dtype="float64")
    assert layer.compute_output_shape((None, None, *in_shape[1:])) == (None, None, *out_shape[1:])
    assert layer(gn.Input(in_shape)).shape == (None, *out_shape)
    x = rng.standard_normal((2, *in_shape))
    assert layer(x).shape == (2, *out_shape)
    check_backward(lambda a: layer.forward(a, training=True), layer.backward, [x])
    assert layers.UpSampling2D.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("padding, pairs, out_hw", [
    (1, ((1, 1), (1, 1)), (6, 7)),
    ((2, 0), ((2, 2), (0, 0)), (8, 5)),
    (((0, 1), (2, 3)), ((0, 1), (2, 3)), (5, 10)),
])
def test_zero_padding_layer(rng, padding, pairs, out_hw):
    layer = layers.ZeroPadding2D(padding, dtype="float64")
    assert layer.padding == pairs
    assert layer(gn.Input((4, 5, 2))).shape == (None, *out_hw, 2)
    x = rng.standard_normal((1, 4, 5, 2))
    assert layer(x).shape == (1, *out_hw, 2)
    check_backward(lambda a: layer.forward(a), layer.backward, [x])
    clone = layers.ZeroPadding2D.from_config(layer.get_config())
    assert clone.padding == pairs and clone.get_config() == layer.get_config()


@pytest.mark.parametrize("cls, kwargs, message", [
    (layers.ZeroPadding2D, dict(padding=-1), "padding must be an int, a pair"),
    (layers.ZeroPadding2D, dict(padding=(1, 2, 3)), "padding must be an int, a pair"),
    (layers.ZeroPadding2D, dict(padding=((1, 2), 3)), "padding must be an int, a pair"),
    (layers.UpSampling2D, dict(size=0), "size must be positive"),
    (layers.UpSampling2D, dict(interpolation="lanczos3"), "interpolation must be one of nearest, bilinear"),
])
def test_reshaping_bad_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [layers.UpSampling2D, layers.ZeroPadding2D])
def test_reshaping_wrong_rank(cls):
    layer = cls()
    with pytest.raises(ValueError, match=rf"{cls.__name__} '{layer.name}' expects a 4-D input "
                                         r"\(batch, height, width, channels\); received shape \(3, 8, 8\)"):
        layer(np.zeros((3, 8, 8), np.float32))


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_concatenate_layer(rng):
    a, b = gn.Input((4, 4, 2)), gn.Input((4, 4, 3))
    layer = layers.Concatenate(dtype="float64")
    assert layer([a, b]).shape == (None, 4, 4, 5)
    xs = [rng.standard_normal((2, 4, 4, 2)), rng.standard_normal((2, 4, 4, 3))]
    y = layer(xs)
    assert_close(y[..., :2], xs[0], rtol=0, atol=0)
    assert_close(y[..., 2:], xs[1], rtol=0, atol=0)
    check_backward(lambda *a: layer.forward(list(a)), layer.backward, xs)
    assert layer.grads == []


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_concatenate_other_axis_and_config():
    layer = layers.Concatenate(axis=1, name="cat")
    shapes = [(None, 2, 5), (None, 3, 5), (None, 1, 5)]
    assert layer.compute_output_shape(shapes) == (None, 6, 5)
    assert layer.compute_output_shape([(None, 2, 5), (None, None, 5)]) == (None, None, 5)
    y = layer([np.zeros((2, 2, 5)), np.ones((2, 3, 5))])
    assert y.shape == (2, 5, 5) and y[:, 2:].sum() == 30
    clone = layers.Concatenate.from_config(layer.get_config())
    assert clone.axis == 1 and clone.name == "cat"


@pytest.mark.parametrize("shapes, axis", [
    ([(4, 4, 2), (5, 4, 3)], -1),
    ([(4, 4, 2), (4, 4)], -1),
    ([(2, 5), (3, 4)], 1),
])
def test_concatenate_mismatched_shapes_name_all(shapes, axis):
    layer = layers.Concatenate(axis=axis)
    listed = ", ".join(str((None, *s)) for s in shapes)
    with pytest.raises(ValueError, match=rf"Concatenate '{layer.name}' expects .*; received shapes "
                                         rf"\[{listed}\]".replace("(", r"\(").replace(")", r"\)")):
        layer([gn.Input(s) for s in shapes])
    with pytest.raises(ValueError, match=r"received shapes \[\(2, "):
        layers.Concatenate(axis=axis)([np.zeros((2, *s)) for s in shapes])


def test_concatenate_bad_axis():
    with pytest.raises(ValueError, match="an axis 3 to join along"):
        layers.Concatenate(axis=3)([gn.Input((2, 2)), gn.Input((2, 2))])
    with pytest.raises(ValueError, match="axis must be an int"):
        layers.Concatenate(axis="channels")


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_add_layer(rng):
    layer = layers.Add(dtype="float64")
    assert layer([gn.Input((3, 3, 2))] * 3).shape == (None, 3, 3, 2)
    xs = [rng.standard_normal((2, 3, 3, 2)) for _ in range(3)]
    assert_close(layer(xs), xs[0] + xs[1] + xs[2], rtol=1e-12, atol=1e-12)
    check_backward(lambda *a: layer.forward(list(a)), layer.backward, xs)
    assert layer.grads == []
    assert layers.Add.from_config(layer.get_config()).get_config() == layer.get_config()


def test_add_mismatched_shapes_name_all():
    layer = layers.Add()
    with pytest.raises(ValueError, match=rf"Add '{layer.name}' expects inputs of one shape; received shapes "
                                         r"\[\(None, 4, 4, 2\), \(None, 4, 4, 3\)\]"):
        layer([gn.Input((4, 4, 2)), gn.Input((4, 4, 3))])
    with pytest.raises(ValueError, match=r"expects inputs of one rank; received shapes \[\(2, 4\), \(2, 4, 1\)\]"):
        layers.Add()([np.zeros((2, 4)), np.zeros((2, 4, 1))])


@pytest.mark.parametrize("cls", [layers.Add, layers.Concatenate])
def test_merge_layers_need_a_list(cls):
    layer = cls()
    with pytest.raises(ValueError, match=rf"{cls.__name__} '{layer.name}' expects a list of inputs"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expects a list of inputs"):
        cls().compute_output_shape((None, 3))
