"""The tf.data pipelines: structure, switches, reproducibility, the live mixup alpha."""

import dataclasses

import numpy as np
import pytest

from keras_seresnet.config import TrainConfig
from keras_seresnet.data.augment import make_mixup_alpha
from keras_seresnet.data.pipeline import (
    make_epoch_variable,
    make_eval_dataset,
    make_train_dataset,
    mixup_alpha_table,
)
from keras_seresnet.schedules import mixup_alpha_at

N = 20
IMAGES = np.random.default_rng(0).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
LABELS = np.arange(N) % 10

# Most tests run op by op (jit_compile=False): an XLA compilation costs seconds.
QUICK = dict(jit_compile=False)


def config(**changes):
    return dataclasses.replace(TrainConfig(batch_size=8), **changes)


def batches(dataset):
    return [(x.numpy(), t.numpy()) for x, t in dataset]


def test_train_batches_shapes_ranges_and_remainder():
    out = batches(make_train_dataset(IMAGES, LABELS, config(), **QUICK))
    assert [len(x) for x, _ in out] == [8, 8, 4]  # the remainder is kept
    for x, t in out:
        assert x.dtype == np.float32 and x.shape[1:] == (32, 32, 3)
        assert x.min() >= 0.0 and x.max() <= 255.0 + 1e-3
        assert t.dtype == np.float32 and t.shape[1:] == (10,)
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    assert not np.array_equal(out[0][0], IMAGES[:8].astype(np.float32))


def test_everything_off_is_a_pure_shuffle_with_one_hot_labels():
    off = config(color_jitter=False, mixup_cutout=False, horizontal_flip=False, crop_padding=0)
    out = batches(make_train_dataset(IMAGES, LABELS, off, **QUICK))
    x = np.concatenate([b[0] for b in out])
    t = np.concatenate([b[1] for b in out])
    order = [
        int(np.flatnonzero((IMAGES == image).all((1, 2, 3)))[0]) for image in x.astype(np.uint8)
    ]
    assert sorted(order) == list(range(N)) and order != list(range(N))
    np.testing.assert_array_equal(x, IMAGES[order].astype(np.float32))
    np.testing.assert_array_equal(t, np.eye(10, dtype=np.float32)[LABELS[order]])


def test_switches_reach_the_pipeline():
    greyscale = config(grayscale=True, grayscale_rate=1.0, mixup_cutout=False)
    x, t = batches(make_train_dataset(IMAGES, LABELS, greyscale, **QUICK))[0]
    np.testing.assert_allclose(x[..., 0], x[..., 1], atol=1e-3)
    assert set(np.unique(t)) == {0.0, 1.0}  # mixup off: plain one-hot
    x, t = batches(make_train_dataset(IMAGES, LABELS, config(), **QUICK))[0]
    assert not np.allclose(x[..., 0], x[..., 1], atol=1e-3)  # colour kept by default
    assert len(np.unique(t)) > 2  # mixup on


def test_same_seed_same_batches_and_each_epoch_differs():
    def dataset(config_seed, **kwargs):
        return make_train_dataset(IMAGES, LABELS, config(seed=config_seed), **kwargs, **QUICK)

    first = dataset(3)
    epoch1, epoch2 = batches(first), batches(first)
    for (xa, ta), (xb, tb) in zip(epoch1, batches(dataset(3))):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # every epoch differs
    assert not np.array_equal(epoch1[0][0], batches(dataset(4))[0][0])  # so does another seed
    # The seed argument overrides config.seed.
    np.testing.assert_array_equal(batches(dataset(4, seed=3))[0][0], epoch1[0][0])


def test_an_epochs_batches_depend_only_on_seed_and_epoch():
    epoch = make_epoch_variable()
    dataset = make_train_dataset(IMAGES, LABELS, config(), epoch=epoch, **QUICK)
    assert int(dataset.cardinality()) == 3  # known, for Keras's progress bar
    epoch.assign(2)
    two = batches(dataset)
    # Another pass, or another dataset (another process) at the same epoch:
    # the same batches; no state carries over between passes.
    for other in (
        batches(dataset),
        batches(make_train_dataset(IMAGES, LABELS, config(), epoch=2, **QUICK)),
    ):
        for (xa, ta), (xb, tb) in zip(two, other):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ta, tb)
    epoch.assign(3)  # read when the pass starts: no rebuilding
    three = batches(dataset)
    assert not np.array_equal(two[0][0], three[0][0])
    assert not np.array_equal(
        batches(make_train_dataset(IMAGES, LABELS, config(seed=1), epoch=2, **QUICK))[0][0],
        two[0][0],
    )
    with pytest.raises(
        ValueError, match="`epoch` must be a non-negative integer. Received: epoch=-1"
    ):
        make_epoch_variable(-1)


def test_every_image_once_per_epoch_in_an_order_of_its_own():
    off = config(color_jitter=False, mixup_cutout=False, horizontal_flip=False, crop_padding=0)
    epoch = make_epoch_variable()
    dataset = make_train_dataset(IMAGES, LABELS, off, epoch=epoch, **QUICK)
    orders = []
    for e in range(3):
        epoch.assign(e)
        t = np.concatenate([t for _, t in batches(dataset)])
        x = np.concatenate([x for x, _ in batches(dataset)])
        orders.append(
            [
                int(np.flatnonzero((IMAGES == image).all((1, 2, 3)))[0])
                for image in x.astype(np.uint8)
            ]
        )
        assert sorted(orders[-1]) == list(range(N))
        np.testing.assert_array_equal(t, np.eye(10, dtype=np.float32)[LABELS[orders[-1]]])
    assert len({tuple(o) for o in orders}) == 3


def test_xla_and_op_by_op_agree():
    # 16 images in batches of 8: one batch shape, one XLA compilation.
    fast = batches(make_train_dataset(IMAGES[:16], LABELS[:16], config()))
    slow = batches(make_train_dataset(IMAGES[:16], LABELS[:16], config(), **QUICK))
    for (xf, tf_), (xs, ts) in zip(fast, slow):
        np.testing.assert_allclose(xf, xs, atol=0.05)  # float rounding, in [0, 255]
        np.testing.assert_allclose(tf_, ts, atol=1e-6)


def lambda_spread(dataset):
    """Mean lambda (1 - lambda) over one epoch's batches, read off the mixed targets.

    Every image has its own class, so a row mixed with another image holds
    lambda and 1 - lambda; the largest second-largest entry of a batch is
    min(lambda, 1 - lambda).
    """
    spreads = []
    for _, t in dataset:
        weight = np.sort(t.numpy(), axis=1)[:, -2].max()
        spreads.append(weight * (1 - weight))
    return np.mean(spreads)


def test_changing_the_alpha_variable_after_building_changes_the_mixing():
    images = np.zeros((400, 32, 32, 3), np.uint8)  # 50 batches of 8
    labels = np.arange(400)
    alpha = make_mixup_alpha(0.4)
    light = config(num_classes=400, color_jitter=False, crop_padding=0, horizontal_flip=False)
    dataset = make_train_dataset(images, labels, light, alpha, **QUICK)
    # Beta(a, a): E[lambda (1 - lambda)] = a / (2 (2a + 1)).
    alpha.assign(20.0)
    wide = lambda_spread(dataset)
    alpha.assign(0.02)
    narrow = lambda_spread(dataset)
    assert abs(wide - 20 / 82) < 0.02  # 0.244: lambda near 0.5
    assert narrow < 0.04  # 0.0096: lambda near 0 or 1


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_each_batch_is_mixed_with_the_schedules_alpha_for_its_place_in_the_run(unit):
    run = config(epochs=3, schedule_unit=unit, color_jitter=False, crop_padding=0)
    epoch = make_epoch_variable()
    drifting = make_mixup_alpha(0.4)  # what a per-batch callback would assign
    dataset = make_train_dataset(
        IMAGES, LABELS, run, drifting, epoch=epoch, with_mixup_alpha=True, **QUICK
    )
    plain = make_train_dataset(IMAGES, LABELS, run, epoch=epoch, **QUICK)
    steps = 3  # 20 images in batches of 8
    for e in range(3):
        epoch.assign(e)
        alphas = []
        for b, (_, _, alpha) in enumerate(dataset):
            drifting.assign(5.0 + b)  # ignored: the batch's place in the run decides
            alphas.append(float(alpha))
        expected = [float(np.float32(mixup_alpha_at(e, run, b, steps))) for b in range(steps)]
        assert alphas == expected
        if e == 0:
            first = alphas
        # The alpha output changes nothing else: the same images and mixed targets.
        for (xa, ta, _), (xb, tb) in zip(dataset, plain):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ta.numpy(), tb.numpy())
    if unit == "step":
        assert first[0] > first[1] > first[2]  # within an epoch, per step
    else:
        assert len(set(first)) == 1
    # Epochs past the run's end keep the last epoch's row.
    epoch.assign(7)
    assert [float(a) for _, _, a in dataset] == alphas
    table = mixup_alpha_table(run, steps)
    assert table.shape == ((3, 3) if unit == "step" else (3, 1)) and table.dtype == np.float32


def test_mixup_alpha_output_needs_mixup():
    with pytest.raises(ValueError, match="`with_mixup_alpha` needs mixup on"):
        make_train_dataset(
            IMAGES, LABELS, config(mixup_cutout=False), epoch=0, with_mixup_alpha=True
        )


def test_eval_batches_are_the_data_untouched():
    out = batches(make_eval_dataset(IMAGES, LABELS, batch_size=8))
    assert [len(x) for x, _ in out] == [8, 8, 4]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in out]), IMAGES.astype(np.float32))
    np.testing.assert_array_equal(
        np.concatenate([t for _, t in out]), np.eye(10, dtype=np.float32)[LABELS]
    )
    assert batches(make_eval_dataset(IMAGES, LABELS, batch_size=8))[0][0].dtype == np.float32


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="`x` must be images"):
        make_train_dataset(IMAGES[0], LABELS, config())
    with pytest.raises(ValueError, match=r"`y` must hold labels in \[0, 10\)"):
        make_eval_dataset(IMAGES, LABELS + 5)
    with pytest.raises(ValueError, match="`y` must be integer labels"):
        make_eval_dataset(IMAGES, LABELS[:3])
    with pytest.raises(ValueError, match="batch_size"):
        make_eval_dataset(IMAGES, LABELS, batch_size=0)
    with pytest.raises(ValueError, match="grayscale_rate"):
        make_train_dataset(IMAGES, LABELS, config(grayscale_rate=2.0))


def test_labels_of_shape_n_1_make_the_same_batches():
    flat = batches(make_train_dataset(IMAGES, LABELS, config(), epoch=0, **QUICK))
    column = batches(make_train_dataset(IMAGES, LABELS[:, None], config(), epoch=0, **QUICK))
    for (xa, ta), (xb, tb) in zip(flat, column):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    assert len(batches(make_eval_dataset(IMAGES, LABELS[:, None], batch_size=np.int64(8)))) == 3


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            dict(config={"batch_size": 8}),
            TypeError,
            r"^Argument `config` must be a TrainConfig \(for a dict use `TrainConfig.from_dict`\). "
            r"Received: config of type dict$",
        ),
        (
            dict(seed=-1),
            ValueError,
            r"^Argument `seed` must be None or an integer in \[0, 4294967295\]. "
            r"Received: seed=-1$",
        ),
        (
            dict(seed=2.5),
            ValueError,
            r"^Argument `seed` must be None or an integer .* Received: seed=2.5$",
        ),
        (
            dict(epoch=-1),
            ValueError,
            r"^Argument `epoch` must be None, a non-negative integer or an "
            r"int tf.Variable \(`make_epoch_variable`\). Received: epoch=-1$",
        ),
        (dict(epoch=1.5), ValueError, r"^Argument `epoch` must be None, .* Received: epoch=1.5$"),
        (
            dict(mixup_alpha=0.3),
            TypeError,
            r"^Argument `mixup_alpha` must be None or a float32 scalar "
            r"tf.Variable .* Received: mixup_alpha=0.3$",
        ),
    ],
)
def test_make_train_dataset_refuses_bad_arguments_when_called(arguments, error, message):
    arguments = {"config": config(), **arguments}
    with pytest.raises(error, match=message):
        make_train_dataset(IMAGES, LABELS, arguments.pop("config"), **arguments, **QUICK)


def test_one_hot_labels_are_refused_with_a_hint():
    with pytest.raises(
        ValueError,
        match=r"`y` must be integer labels \[N\] \(or \[N, 1\]\) .*"
        r"pass `y.argmax\(axis=1\)`. Received: y with shape \(20, 10\)",
    ):
        make_train_dataset(IMAGES, np.eye(10, dtype=np.int64)[LABELS], config(), **QUICK)
