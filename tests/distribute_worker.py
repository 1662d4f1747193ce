"""What each rank runs in tests/test_distribute.py: ``mpiexec -n N python distribute_worker.py CASE DIR``.

Every case writes what the test checks into DIR (``<name>.rank<r>.npz``, checkpoints, CSV)
or prints it; the test reads them back. ``train`` is also run in one plain process by the
test itself (no distribution) as the single-rank reference.
"""
import os
import sys
import time

import numpy as np

import gpunet as gn

STEPS, BATCH = 10, 16


def data(samples=STEPS * BATCH):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((samples, 5, 5, 2)).astype(np.float32)
    return x, rng.integers(0, 3, samples)


def make_model(width=4):
    return gn.Sequential([gn.Input((5, 5, 2)), gn.layers.Conv2D(width, 3, activation="relu"),
                          gn.layers.Flatten(), gn.layers.Dense(3, activation="softmax")])


def train(epochs=1, callbacks=(), optimizer="adam"):
    """Seeded model, 10 global batches of 16 per epoch; returns (model, history)."""
    gn.utils.set_random_seed(3)
    model = make_model()
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model, history


def save(folder, name, model, history):
    rank = gn.distribute.distribution().process_id if gn.distribute.distribution() else 0
    np.savez(os.path.join(folder, f"{name}.rank{rank}.npz"), *model.get_weights(),
             loss=np.array(history.history["loss"]), accuracy=np.array(history.history["accuracy"]))


def case_exact(folder):
    """10 Adam steps on 2 ranks; weights and logs saved per rank. Then 3 train_on_batch calls."""
    save(folder, "exact", *train())
    save(folder, "on_batch", *train_on_batches())


def train_on_batches():
    """Three ``train_on_batch`` calls on global batches of 16, 15 and 1 samples."""
    gn.utils.set_random_seed(3)
    model = make_model()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    logs = [model.train_on_batch(x[a:b], y[a:b], return_dict=True) for a, b in ((0, 16), (16, 31), (31, 32))]
    history = {"loss": [l["loss"] for l in logs], "accuracy": [l["accuracy"] for l in logs]}
    return model, type("History", (), {"history": history})


def case_bn(folder):
    """BatchNormalization with local statistics: moving statistics stay equal on every rank."""
    gn.utils.set_random_seed(3)
    model = gn.Sequential([gn.Input((5, 5, 2)), gn.layers.Conv2D(4, 3), gn.layers.BatchNormalization(),
                           gn.layers.Flatten(), gn.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(37)   # a last global batch of 5: parts 3 and 2
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    history.history["accuracy"] = [0.0]
    save(folder, "bn", model, history)


def train_batchnorm(synchronized, samples=33):
    """Conv, BatchNormalization, a nested model's BatchNormalization, Dense; 3 global batches of
    16, 16 and 1 (rank 1 idles in the last)."""
    gn.utils.set_random_seed(3)
    inner = gn.Sequential([gn.Input((3, 3, 4)), gn.layers.BatchNormalization(synchronized=synchronized)])
    model = gn.Sequential([gn.Input((5, 5, 2)), gn.layers.Conv2D(4, 3),
                           gn.layers.BatchNormalization(synchronized=synchronized, momentum=0.5),
                           inner, gn.layers.Flatten(), gn.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data(samples)
    return model, model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)


def case_syncbn(folder):
    save(folder, "syncbn", *train_batchnorm(synchronized=True))


def dataset_batches():
    """A PyDataset's batches as a list: six of 8 samples, a last one of 5."""
    x, y = data(53)
    return [(x[k:k + 8], y[k:k + 8]) for k in range(0, 53, 8)]


def train_batches(steps):
    """Adam on a model, one step per entry of ``steps`` (a (x, y) batch, or None: idle), through
    the hooks a PyDataset adapter calls."""
    gn.utils.set_random_seed(3)
    model = make_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    replicas = model._replicas = gn.distribute.replicas(model, batches=len(dataset_batches()))
    for batch in steps:
        replicas.start_batch(0 if batch is None else len(batch[1]))
        if batch is None:
            model._idle_step()
        else:
            model._train_step(model._to_backend([batch[0]]), model._targets_to_backend(batch[1]))
    return model


def case_pydataset(folder):
    """Batches dealt out by index: rank 0 trains 0, 2, 4, 6; rank 1 trains 1, 3, 5, then idles."""
    batches = dataset_batches()
    replicas = gn.distribute.replicas(make_model(), batches=len(batches))
    indices = replicas.batch_indices(len(batches))
    model = train_batches([None if i is None else batches[i] for i in indices])
    print(f"rank {replicas.rank} batches {indices}", flush=True)
    save(folder, "pydataset", model, type("H", (), {"history": {"loss": [0.0], "accuracy": [0.0]}}))


def case_checkpoint(folder):
    """One epoch with a checkpoint and a CSV log (rank 0 writes them), then a second epoch."""
    checkpoint = gn.callbacks.ModelCheckpoint(os.path.join(folder, "ckpt.h5"), save_freq="epoch")
    log = gn.callbacks.CSVLogger(os.path.join(folder, "log.csv"))
    model, history = train(epochs=1, callbacks=[checkpoint, log])
    x, y = data()
    history = model.fit(x, y, batch_size=BATCH, epochs=2, initial_epoch=1, verbose=0)
    save(folder, "two_epochs", model, history)


def case_raise(folder):
    """Rank 1 raises in a callback at its fourth batch; rank 0 is waiting in a collective."""
    rank = gn.distribute.distribution().process_id

    def boom(batch, logs):
        if rank == 1 and batch == 3:
            raise RuntimeError("boom in rank 1's callback")
    train(callbacks=[gn.callbacks.LambdaCallback(on_train_batch_end=boom)])
    print("finished without an error", flush=True)


def case_hang(folder):
    """Rank 1 sleeps past the 1 s collective timeout before training: rank 0 times out."""
    if gn.distribute.distribution().process_id == 1:
        time.sleep(3)
    train()
    print("finished without an error", flush=True)


def case_bad_input(folder):
    """Three mistakes, each caught on every rank: print what each rank was told."""
    rank = gn.distribute.distribution().process_id
    x, y = data()
    model = make_model(width=4 if rank == 0 else 5)   # rank 1 builds another model
    model.compile("sgd", "sparse_categorical_crossentropy")
    for label, run in (("models", lambda: model.fit(x, y, batch_size=BATCH, verbose=0)),
                       ("short", lambda: make_model_compiled().fit(x[:1], y[:1], batch_size=BATCH, verbose=0)),
                       ("batches", lambda: gn.distribute.replicas(make_model_compiled(), batches=1)),
                       ("late", late_distribution)):
        try:
            run()
            print(f"{label}: no error", flush=True)
        except gn.distribute.DistributedError as error:
            print(f"{label}: rank {rank} got: {error}", flush=True)


def make_model_compiled():
    model = make_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def late_distribution():
    parallel = gn.distribute.distribution()
    gn.distribute.set_distribution(None)
    model = make_model_compiled()                 # made before DataParallel was set
    gn.distribute.set_distribution(parallel)
    x, y = data()
    model.fit(x, y, batch_size=BATCH, verbose=0)


if __name__ == "__main__":
    case, folder = sys.argv[1], sys.argv[2]
    timeout = 1.0 if case == "hang" else 60.0
    gn.distribute.set_distribution(gn.distribute.DataParallel(timeout=timeout))
    globals()[f"case_{case}"](folder)
