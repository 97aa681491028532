import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seresnet.training.callbacks import (
    EpochSeed,
    EpochSummary,
    MixupAlphaDecay,
    StopOnNaN,
    WarmupCosineLearningRate,
    format_epoch_summary,
)
from keras_seresnet.training.optimizers import TorchSGD


def reference_lr(e, epochs=250, base=0.1, floor=0.001, warmup=None):
    # SPEC's schedule written out again, with the 15/250 scaling of issue 4.
    if warmup is None:
        warmup = max(round(epochs * 15 / 250), 1) if epochs >= 2 else 0
    if e < warmup:
        return base * (e + 1) / warmup
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup)))


def reference_alpha(e, epochs=250, alpha=0.4, floor=0.1):
    return max(floor, alpha * (1 - e / epochs))


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=TorchSGD(learning_rate=0.5), loss="mse")
    return model


def tiny_dataset(n=10, batch=5, value=1.0):
    x = np.full((n, 4), value, "float32")
    y = np.zeros((n, 3), "float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_every_epoch_of_the_recipe_sets_and_logs_spec_values():
    model = tiny_model()
    alpha = tf.Variable(0.0, trainable=False)
    lr_cb, alpha_cb = WarmupCosineLearningRate(), MixupAlphaDecay(alpha)
    for cb in (lr_cb, alpha_cb):
        cb.set_model(model)
    assert reference_lr(0) == pytest.approx(0.1 / 15) and reference_lr(15) == pytest.approx(0.1)
    for e in range(250):
        logs = {}
        for cb in (lr_cb, alpha_cb):
            cb.on_epoch_begin(e)
            cb.on_epoch_end(e, logs)
        assert logs["learning_rate"] == pytest.approx(reference_lr(e), rel=1e-12)
        assert logs["mixup_alpha"] == pytest.approx(reference_alpha(e), rel=1e-12)
        # What the optimizer and the pipeline variable hold (float32).
        assert float(model.optimizer.learning_rate) == pytest.approx(reference_lr(e), rel=1e-6)
        assert float(alpha.numpy()) == pytest.approx(reference_alpha(e), rel=1e-6)
    assert logs["mixup_alpha"] == 0.1  # the floor is reached
    assert logs["learning_rate"] == pytest.approx(
        0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi * 234 / 235))
    )


@pytest.mark.parametrize("epochs,warmup", [(10, None), (3, None), (20, 4), (1, None)])
def test_short_runs_scale_the_schedule_unless_warmup_is_given(epochs, warmup):
    lr_cb = WarmupCosineLearningRate(epochs=epochs, warmup_epochs=warmup)
    alpha_cb = MixupAlphaDecay(tf.Variable(0.0), epochs=epochs)
    lrs = [lr_cb.value_at(e) for e in range(epochs)]
    assert lrs == pytest.approx(
        [reference_lr(e, epochs, warmup=warmup) for e in range(epochs)], rel=1e-12
    )
    alphas = [alpha_cb.value_at(e) for e in range(epochs)]
    assert alphas == pytest.approx([reference_alpha(e, epochs) for e in range(epochs)], rel=1e-12)
    if warmup:
        assert lrs[warmup - 1] == pytest.approx(0.1) and lrs[0] == pytest.approx(0.1 / warmup)
    if epochs == 10:
        assert lrs[0] == pytest.approx(0.1)  # round(10 * 15 / 250) = 1 warmup epoch
        assert alphas[5] == pytest.approx(0.2)


def test_fit_history_has_both_columns_and_the_variable_follows():
    model = tiny_model()
    alpha = tf.Variable(0.4, trainable=False)
    history = model.fit(
        tiny_dataset(),
        epochs=4,
        verbose=0,
        shuffle=False,
        callbacks=[WarmupCosineLearningRate(epochs=4), MixupAlphaDecay(alpha, epochs=4)],
    )
    assert history.history["learning_rate"] == pytest.approx([reference_lr(e, 4) for e in range(4)])
    assert history.history["mixup_alpha"] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert float(model.optimizer.learning_rate) == pytest.approx(reference_lr(3, 4), rel=1e-6)
    assert float(alpha.numpy()) == pytest.approx(0.1)


def test_alpha_assignment_reaches_an_already_built_dataset():
    alpha = tf.Variable(0.4, trainable=False)
    # A traced map function that reads the variable, as the pipeline's mixup does.
    dataset = tf.data.Dataset.range(1).map(
        lambda i: alpha.read_value() + 0.0 * tf.cast(i, tf.float32)
    )
    callback = MixupAlphaDecay(alpha, epochs=10)
    callback.on_epoch_begin(5)
    assert float(next(iter(dataset))) == pytest.approx(0.2)
    callback.on_epoch_begin(9)
    assert float(next(iter(dataset))) == pytest.approx(0.1)


def test_callbacks_are_registered_and_round_trip_through_get_config():
    lr_cb = WarmupCosineLearningRate(epochs=30, base_lr=0.05, min_lr=0.0, warmup_epochs=2)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr_cb))
    assert isinstance(clone, WarmupCosineLearningRate)
    assert clone.get_config() == lr_cb.get_config()
    assert [clone.value_at(e) for e in range(30)] == [lr_cb.value_at(e) for e in range(30)]
    alpha_cb = MixupAlphaDecay(tf.Variable(0.0), epochs=30, alpha=0.3, alpha_min=0.05)
    serialized = keras.saving.serialize_keras_object(alpha_cb)
    assert serialized["registered_name"] == "keras_seresnet>MixupAlphaDecay"
    alpha_clone = keras.saving.deserialize_keras_object(serialized)
    assert alpha_clone.get_config() == {
        "epochs": 30,
        "alpha": 0.3,
        "alpha_min": 0.05,
        "unit": "epoch",
    }
    assert alpha_clone.alpha_variable is None  # runtime state, attached before fit
    step_cb = WarmupCosineLearningRate(epochs=3, unit="step")
    step_clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(step_cb))
    assert step_clone.get_config()["unit"] == "step"
    assert step_clone.value_at(2, 4, 5) == step_cb.value_at(2, 4, 5) == pytest.approx(0.001)
    for callback in (StopOnNaN(), EpochSummary(7, validation_label="val")):
        serialized = keras.saving.serialize_keras_object(callback)
        assert serialized["registered_name"] == f"keras_seresnet>{type(callback).__name__}"
        clone = keras.saving.deserialize_keras_object(serialized)
        assert type(clone) is type(callback) and clone.get_config() == callback.get_config()


def test_bad_arguments_and_misuse_fail_with_named_values():
    with pytest.raises(ValueError, match=r"warmup_epochs.*warmup_epochs=10"):
        WarmupCosineLearningRate(epochs=10, warmup_epochs=10)
    with pytest.raises(
        ValueError,
        match=r"^Argument `alpha_min` must be in \(0, alpha=0.1\]. Received: alpha_min=0.2$",
    ):
        MixupAlphaDecay(tf.Variable(0.0), alpha=0.1, alpha_min=0.2)
    with pytest.raises(ValueError, match=r"epoch=5, epochs=5"):
        WarmupCosineLearningRate(epochs=5).value_at(5)
    with pytest.raises(
        ValueError,
        match=r"^Argument `seed` must be an integer in \[0, 4294967295\]. "
        r"Received: seed=-1$",
    ):
        EpochSeed(-1)


def test_mixup_alpha_decay_without_a_variable_only_logs():
    history = tiny_model().fit(
        tiny_dataset(), epochs=2, verbose=0, shuffle=False, callbacks=[MixupAlphaDecay(epochs=2)]
    )
    assert history.history["mixup_alpha"] == [0.4, 0.2]


def test_stop_on_nan_names_epoch_and_batch_and_stops_at_once():
    model = tiny_model()
    batches = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    guard = StopOnNaN()
    finite = tiny_dataset(n=4, batch=2)
    bad = tiny_dataset(n=6, batch=2, value=np.inf)
    model.fit(finite, epochs=1, verbose=0, shuffle=False, callbacks=[guard])
    assert guard.message is None
    batches.clear()
    model.fit(bad, epochs=3, verbose=0, shuffle=False, callbacks=[guard, counter])
    assert batches == [0]  # the first bad batch stops training
    assert guard.message.startswith("The training loss became nan in epoch 1/3 at batch 1/3;")
    assert "learning rate" in guard.message


def test_epoch_summary_prints_one_line_with_lr_alpha_and_logs_seconds():
    lines = []
    model = tiny_model()
    history = model.fit(
        tiny_dataset(),
        validation_data=tiny_dataset(),
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[
            WarmupCosineLearningRate(epochs=2),
            MixupAlphaDecay(tf.Variable(0.4), epochs=2),
            EpochSummary(2, print_fn=lines.append),
        ],
    )
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2: lr 0.1 alpha 0.2000 loss ")
    assert "test_loss" in lines[1] and lines[1].endswith(" s)")
    assert all(s >= 0 for s in history.history["seconds"])
    assert format_epoch_summary(0, 250, {"learning_rate": 0.1 / 15}) == "epoch 1/250: lr 0.0066667"
    # A validation split is named as such; logs already named test_* print as they are.
    validation = {"val_loss": 1.0, "val_accuracy": 0.5}
    assert (
        format_epoch_summary(1, 2, validation, validation_label="val")
        == "epoch 2/2: val_loss 1.0000 val_acc 0.5000"
    )
    assert format_epoch_summary(1, 2, {"test_loss": 1.0, "test_accuracy": 0.5}) == (
        "epoch 2/2: test_loss 1.0000 test_acc 0.5000"
    )


def test_arguments_are_checked_by_the_callbacks_with_keras_style_messages():
    cases = [
        (
            lambda: WarmupCosineLearningRate(base_lr=-1),
            "Argument `base_lr` must be positive. Received: base_lr=-1",
        ),
        (
            lambda: WarmupCosineLearningRate(base_lr=0.1, min_lr=0.2),
            "Argument `min_lr` must be in [0, base_lr=0.1]. Received: min_lr=0.2",
        ),
        (
            lambda: WarmupCosineLearningRate(epochs=0),
            "Argument `epochs` must be a positive integer. Received: epochs=0",
        ),
        (
            lambda: WarmupCosineLearningRate(unit="batch"),
            "Argument `unit` must be one of 'epoch', 'step'. Received: unit='batch'",
        ),
        (lambda: MixupAlphaDecay(alpha=0), "Argument `alpha` must be positive. Received: alpha=0"),
        (
            lambda: MixupAlphaDecay(epochs=2.5),
            "Argument `epochs` must be a positive integer. Received: epochs=2.5",
        ),
        (
            lambda: EpochSummary(0),
            "Argument `epochs` must be a positive integer. Received: epochs=0",
        ),
        (
            lambda: EpochSummary(3, validation_label="dev"),
            "Argument `validation_label` must be one of 'test', 'val'. Received: validation_label='dev'",
        ),
    ]
    for build, message in cases:
        with pytest.raises(ValueError) as error:
            build()
        assert str(error.value) == message


def test_defaults_are_the_train_configs():
    from keras_seresnet.config import TrainConfig

    recipe = TrainConfig()
    assert WarmupCosineLearningRate().get_config() == {
        "epochs": recipe.epochs,
        "base_lr": recipe.base_lr,
        "min_lr": recipe.min_lr,
        "warmup_epochs": recipe.warmup_epochs,
        "unit": recipe.schedule_unit,
    }
    assert MixupAlphaDecay().get_config() == {
        "epochs": recipe.epochs,
        "alpha": recipe.mixup_alpha,
        "alpha_min": recipe.mixup_alpha_min,
        "unit": recipe.schedule_unit,
    }
    config = TrainConfig(epochs=7, base_lr=0.2, schedule_unit="step", mixup_alpha=0.5)
    assert WarmupCosineLearningRate.from_train_config(config).get_config()["unit"] == "step"
    assert MixupAlphaDecay.from_train_config(config, None).get_config()["alpha"] == 0.5


def reference_step_lr(s, total, warmup, base=0.1, floor=0.001):
    # The step unit: warmup over `warmup` steps, cosine to the floor at step total - 1.
    if s < warmup:
        return base * (s + 1) / warmup
    return floor + 0.5 * (base - floor) * (
        1 + math.cos(math.pi * (s - warmup) / (total - 1 - warmup))
    )


def test_step_unit_sets_the_learning_rate_before_every_batch():
    model = tiny_model()
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(model.optimizer.learning_rate))
    )
    alpha = tf.Variable(0.4, trainable=False)
    history = model.fit(
        tiny_dataset(n=15, batch=5),  # 3 steps per epoch, 12 in all
        epochs=4,
        verbose=0,
        shuffle=False,
        callbacks=[
            WarmupCosineLearningRate(epochs=4, warmup_epochs=1, unit="step"),
            MixupAlphaDecay(alpha, epochs=4, unit="step"),
            recorder,
        ],
    )
    expected = [reference_step_lr(s, 12, 3) for s in range(12)]
    assert seen == pytest.approx(expected, rel=1e-6)  # float32 in the optimizer
    assert seen[2] == pytest.approx(0.1) and seen[-1] == pytest.approx(
        0.001
    )  # the floor at the last step
    # The history keeps the value of each epoch's first step.
    assert history.history["learning_rate"] == pytest.approx(expected[::3], rel=1e-12)
    assert history.history["mixup_alpha"] == pytest.approx([0.4, 0.3, 0.2, 0.1], rel=1e-12)


def test_step_unit_needs_a_dataset_of_known_length():
    model = tiny_model()
    unknown = tiny_dataset().filter(lambda x, y: True)
    with pytest.raises(ValueError, match=r"unit='step'\) needs the number of steps per epoch"):
        model.fit(
            unknown,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[WarmupCosineLearningRate(epochs=1, unit="step")],
        )


JAX_SCRIPT = """
import keras, numpy as np
from keras_seresnet.training.callbacks import EpochSummary, MixupAlphaDecay, StopOnNaN, WarmupCosineLearningRate
from keras_seresnet.training.optimizers import TorchSGD
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
model.compile(optimizer=TorchSGD(learning_rate=0.5), loss="mse")
alpha = keras.Variable(0.4, trainable=False)
lines = []
history = model.fit(np.ones((6, 4), "float32"), np.zeros((6, 3), "float32"), batch_size=2, epochs=2,
                    verbose=0, callbacks=[StopOnNaN(), WarmupCosineLearningRate(epochs=2, unit="step"),
                                          MixupAlphaDecay(alpha, epochs=2), EpochSummary(2, lines.append)])
import sys
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print(keras.backend.backend(), history.history["learning_rate"], history.history["mixup_alpha"],
      round(float(alpha.numpy()), 6), lines[-1].split(":")[0])
"""


@pytest.mark.slow
def test_callbacks_and_schedules_run_under_the_jax_backend():
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # 3 steps per epoch, one warmup epoch of 3 steps: the first steps of the epochs.
    expected = [reference_step_lr(0, 6, 3), reference_step_lr(3, 6, 3)]
    assert done.stdout.split() == [
        "jax",
        f"[{expected[0]!r},",
        f"{expected[1]!r}]",
        "[0.4,",
        "0.2]",
        "0.2",
        "epoch",
        "2/2",
    ]


def test_numpy_integer_epochs_are_accepted_and_saved_as_int():
    lr = WarmupCosineLearningRate(epochs=np.int64(10), warmup_epochs=np.int64(2))
    alpha = MixupAlphaDecay(epochs=np.int64(10))
    summary = EpochSummary(np.int64(3))
    assert type(lr.get_config()["epochs"]) is int and type(lr.get_config()["warmup_epochs"]) is int
    assert type(alpha.get_config()["epochs"]) is int and summary.epochs == 3
    assert lr.value_at(9) == WarmupCosineLearningRate(epochs=10, warmup_epochs=2).value_at(9)
