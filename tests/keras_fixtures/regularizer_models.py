"""The two models of the regularizer fixtures, built in either library: ``conv_model(keras)`` in
make_regularizer_fixtures.py, ``conv_model(gn)`` in tests/test_regularizers.py (both expose
Sequential, Input, layers, regularizers and constraints under the same names)."""


def conv_model(lib):
    layers, regularizers, constraints = lib.layers, lib.regularizers, lib.constraints
    return lib.Sequential([
        lib.Input((5, 5, 2)),
        layers.Conv2D(3, 3, kernel_regularizer=regularizers.l2(0.05), bias_regularizer=regularizers.l1(0.02),
                      kernel_constraint=constraints.MaxNorm(0.4, axis=[0, 1, 2]), activation="relu"),
        layers.Flatten(),
        layers.Dense(3, kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.02), activity_regularizer="l1",
                     bias_constraint=constraints.NonNeg(), kernel_constraint=constraints.UnitNorm()),
    ])


def dense_model(lib):
    layers, regularizers, constraints = lib.layers, lib.regularizers, lib.constraints
    return lib.Sequential([
        lib.Input((5, 5, 2)), layers.Flatten(),
        layers.Dense(4, activity_regularizer=regularizers.l2(0.1),
                     kernel_constraint=constraints.MinMaxNorm(0.2, 0.5, rate=0.7)),
        layers.Dense(3, kernel_regularizer="l1l2"),
    ])
