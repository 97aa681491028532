"""Run by tests/test_scale.py in a subprocess: MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow starts, hence a process
of its own. Prints one JSON object:

- `replicas`: replicas of `make_strategy("mirrored")`.
- `same_batches`: the distributed dataset's per-replica shares, put back
  together, equal the one-device batches of the same epoch.
- `spread_wide`, `spread_narrow`: mean lambda (1 - lambda) of the mixed
  targets read through the distributed dataset of a constant alpha 20, then
  0.02 (Beta(a, a): a / (2 (2a + 1)) = 0.244 and 0.0096).
- `steps`: after each epoch (one step each), the largest absolute weight
  difference between `train()` on one device and with `--strategy mirrored`
  on two replicas from the same initial weights, and the largest weight;
  `losses` of both runs.
- `jit_error`: the error `--jit` gets with two CPU replicas.
"""

import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from keras_seresnet import runtime  # noqa: E402

runtime.configure_process()  # as the scripts do, before TensorFlow starts

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seresnet import TrainConfig, build_from_config  # noqa: E402
from keras_seresnet.data import pipeline  # noqa: E402
from keras_seresnet.training import distribute as scale  # noqa: E402
from keras_seresnet.training.loop import train  # noqa: E402
from tests.tiny_model import TINY_MODEL  # noqa: E402

N = 16
IMAGES = np.random.default_rng(0).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
LABELS = np.arange(N) % 10


class WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.numpy().copy() for w in self.model.weights])


def pipeline_checks(strategy):
    # 50 batches of 8 images, each its own class, so a mixed row holds
    # lambda and 1 - lambda; no augmentation but mixup (fast).
    images, labels = np.zeros((400, 32, 32, 3), np.uint8), np.arange(400)
    epoch = pipeline.make_epoch_variable()

    def distributed_batches(alpha):
        # A constant alpha schedule (start = floor), so the pipeline's alpha is known.
        config = TrainConfig(
            batch_size=8,
            num_classes=400,
            color_jitter=False,
            crop_padding=0,
            horizontal_flip=False,
            cutout_size=0,
            mixup_alpha=alpha,
            mixup_alpha_min=alpha,
        )
        dataset = pipeline.make_train_dataset(
            images, labels, config, epoch=epoch, jit_compile=False
        )
        # What Keras's fit does with a tf.data dataset under a strategy.
        distributed = strategy.experimental_distribute_dataset(scale.data_sharded(dataset))
        return dataset, [
            [
                np.concatenate([t.numpy() for t in strategy.experimental_local_results(part)])
                for part in batch
            ]
            for batch in distributed
        ]

    epoch.assign(1)
    dataset, batches = distributed_batches(0.4)
    same = all(
        np.array_equal(a, b.numpy())
        for batch, one in zip(batches, dataset)
        for a, b in zip(batch, one)
    )
    spreads = []
    for value in (20.0, 0.02):
        second = [np.sort(t, axis=1)[:, -2].max() for _, t in distributed_batches(value)[1]]
        spreads.append(float(np.mean([w * (1 - w) for w in second])))
    return same, spreads


def main():
    strategy = scale.make_strategy("mirrored")
    same, (wide, narrow) = pipeline_checks(strategy)
    # Dropout off: every replica draws its masks from the same seed state, so
    # masks differ from one device's (see keras_seresnet/scale.py). Colour
    # jitter and crop off: the host makes the same batches either way (checked
    # above), and their XLA compilation would double the time.
    config = TrainConfig(
        **TINY_MODEL,
        batch_size=N,
        dropout=0.0,
        epochs=2,
        warmup_epochs=0,
        color_jitter=False,
        crop_padding=0,
    )
    data = ((IMAGES, LABELS), (IMAGES[:8], LABELS[:8]))
    keras.utils.set_random_seed(1)
    with tempfile.TemporaryDirectory() as folder:
        initial = os.path.join(folder, "initial.keras")
        build_from_config(config).save(initial)
        runs = {}
        for name in ("default", "mirrored"):
            probe = WeightsPerEpoch()
            result = train(
                dataclasses.replace(config, strategy=name),
                os.path.join(folder, name),
                data=data,
                initial_weights=initial,
                callbacks=[probe],
                verbose=0,
            )
            runs[name] = (probe.weights, result.history["loss"])
        try:
            train(
                dataclasses.replace(config, strategy="mirrored", jit=True),
                os.path.join(folder, "jit"),
                data=data,
                verbose=0,
            )
            jit_error = None
        except ValueError as e:
            jit_error = str(e)
    steps = []
    for one, two in zip(runs["default"][0], runs["mirrored"][0]):
        steps.append(
            {
                "max_abs": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
                "largest_weight": max(float(np.abs(a).max()) for a in one),
            }
        )
    json.dump(
        {
            "replicas": strategy.num_replicas_in_sync,
            "jit_error": jit_error,
            "same_batches": bool(same),
            "spread_wide": wide,
            "spread_narrow": narrow,
            "steps": steps,
            "losses": {name: run[1] for name, run in runs.items()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
