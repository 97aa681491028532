"""tf.data pipelines: augmented, mixed training batches and plain evaluation batches.

Training, per epoch (one pass over the dataset):

    pass key (the epoch) -> permuted indices -> batch(128) -> gather images,
    one-hot labels -> augment the batch (map, num_parallel_calls=AUTOTUNE):
       color jitter, [greyscale], pad-4 crop, flip, cutout
    -> mixup (map, AUTOTUNE) with the alpha schedule's value for the
       batch's (epoch, index in the pass) -> prefetch(AUTOTUNE)

Everything works on float32 raw pixels in [0, 255]; the model normalises
inside. Images stay in memory as one uint8 tensor and are gathered a batch at
a time, so shuffling moves indices, not pixels.

Randomness flows from one seed. Each pass starts by reading a key: the epoch
number from a `tf.Variable` (`make_epoch_variable`), or a fresh random draw
when no epoch is given. The pass's permutation and one seed per batch are
derived statelessly from (seed, key), and every augmentation draws its
parameters statelessly from its batch's seed. So the batches of epoch `e` are
a function of (seed, e) alone: one dataset serves a whole run, and a resumed
run sees exactly what an uninterrupted one sees. The same holds with parallel
maps, and under a `tf.distribute` strategy, which splits these same batches.
"""

import numpy as np
import tensorflow as tf

from keras_seresnet.config import MAX_SEED, TrainConfig, check_config_type, is_integer
from keras_seresnet.data.augment import (
    Cutout,
    MixUp,
    PaddedRandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    TorchColorJitter,
    make_mixup_alpha,
)
from keras_seresnet.schedules import mixup_alpha_at


def check_arrays(x, y, num_classes=None, *, names=("x", "y")):
    """Checks images and their labels; returns them as arrays, the labels int64 [N].

    Args:
        x: images [N, H, W, 3], N >= 1, uint8 (or float) pixels in [0, 255].
        y: integer labels [N], or [N, 1] as `keras.datasets` returns them.
        num_classes: the labels must lie in [0, num_classes). None: only
            non-negative labels are required.
        names: the arguments' names for the messages. Default ("x", "y").

    Raises:
        ValueError: naming the argument (shape, dtype or label range).
    """
    x_name, y_name = names
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(
            f"Argument `{x_name}` must be images [N, H, W, 3] with N >= 1. "
            f"Received: {x_name} with shape {x.shape}"
        )
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"Argument `{x_name}` must be uint8 (or float) pixels in [0, 255]. "
            f"Received: {x_name} with dtype {x.dtype}"
        )
    if y.shape == (len(x), 1):
        y = y.reshape(-1)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"Argument `{y_name}` must be integer labels [N] (or [N, 1]) with "
            f"N = len({x_name}) = {len(x)}; for one-hot labels pass "
            f"`{y_name}.argmax(axis=1)`. Received: {y_name} with shape {y.shape} "
            f"and dtype {y.dtype}"
        )
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        rule = "non-negative labels" if num_classes is None else f"labels in [0, {num_classes})"
        raise ValueError(
            f"Argument `{y_name}` must hold {rule}. Received: labels from {y.min()} to {y.max()}"
        )
    return x, y.astype(np.int64)


def train_augmentations(config: TrainConfig):
    """The recipe's per-image augmentation layers, in the recipe's order.

    Color jitter (if `config.color_jitter`), greyscale (if
    `config.grayscale`), pad-and-crop (if `config.crop_padding` > 0),
    horizontal flip (if `config.horizontal_flip`), cutout filled with the
    mean colour `255 * config.mean` (if `config.mixup_cutout` and
    `config.cutout_size` > 0). Mixup is separate (`MixUp`): it mixes labels.

    Returns:
        A list of `augment._StatelessAugmentation` layers for raw pixels
        in [0, 255].
    """
    layers = []
    if config.color_jitter:
        layers.append(
            TorchColorJitter(
                config.brightness,
                config.contrast,
                config.saturation,
                config.hue,
                value_range=(0, 255),
            )
        )
    if config.grayscale:
        layers.append(RandomGrayscale(config.grayscale_rate))
    if config.crop_padding:
        layers.append(PaddedRandomCrop(config.crop_padding))
    if config.horizontal_flip:
        layers.append(RandomHorizontalFlip())
    if config.mixup_cutout and config.cutout_size:
        layers.append(Cutout(config.cutout_size, fill_value=[255.0 * m for m in config.mean]))
    return layers


def sample_augmentations(layers, batch_size, seed):
    """Draws every layer's random parameters for one batch (stateless).

    Args:
        layers: e.g. `train_augmentations(config)`.
        batch_size: images in the batch (int or scalar int32 tensor).
        seed: int tensor [2]; the same seed gives the same parameters.

    Returns:
        A list with one transformation structure per layer.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, max(len(layers), 1)))
    return [layer.sample_transformations(batch_size, s) for layer, s in zip(layers, seeds)]


def apply_augmentations(images, layers, transformations):
    """Applies `layers` in order with the parameters `sample_augmentations` drew.

    Args:
        images: float32 [B, H, W, 3] in [0, 255].
        layers: the same list given to `sample_augmentations`.
        transformations: its result.

    Returns:
        float32 [B, H, W, 3] in [0, 255].
    """
    for layer, transformation in zip(layers, transformations):
        images = layer.augment_images(images, transformation)
    return images


def make_epoch_variable(epoch=0):
    """The epoch number as a variable that a built training dataset reads.

    `make_train_dataset(..., epoch=variable)` reads it when each pass over
    the dataset starts, so `variable.assign(e)` before iterating makes the
    pass epoch `e`'s batches, with no new dataset and no retracing. Create it
    outside any `tf.distribute` scope: it belongs to the host's input
    pipeline, not to the replicas.

    Args:
        epoch: the initial zero-based epoch, >= 0. Default 0.

    Returns:
        A non-trainable int64 scalar `tf.Variable` named "epoch".

    Example:

    >>> epoch = make_epoch_variable(3)
    >>> int(epoch.numpy()), epoch.dtype.name
    (3, 'int64')
    """
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(
            f"Argument `epoch` must be a non-negative integer. Received: epoch={epoch!r}"
        )
    return tf.Variable(int(epoch), trainable=False, dtype=tf.int64, name="epoch")


def _epoch_batches(count, batch_size, seed, epoch):
    """`(indices [B] int64, batch seed [2] int64, key, index)` per batch of one pass.

    The pass's key (the epoch, read from the variable when the pass starts,
    or a per-pass random draw) and `seed` give the permutation and the batch
    seeds through stateless ops, so nothing depends on how many passes came
    before. `key` (int64 scalar) and `index` (the batch's zero-based int64
    position in the pass) locate the batch in the run, for its mixup alpha.
    """
    if epoch is None:
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    elif isinstance(epoch, tf.Variable):
        keys = tf.data.Dataset.from_tensors(0).map(lambda _: tf.cast(epoch.read_value(), tf.int64))
    else:
        keys = tf.data.Dataset.from_tensors(tf.constant(epoch, tf.int64))
    num_batches = -(-count // batch_size)

    def one_pass(key):
        pass_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), key)
        order_seed, batches_seed = tf.unstack(tf.random.experimental.stateless_split(pass_seed, 2))
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), order_seed
        )
        seeds = tf.data.Dataset.range(num_batches).map(
            lambda i: (tf.random.experimental.stateless_fold_in(batches_seed, i), key, i)
        )
        return tf.data.Dataset.zip(
            tf.data.Dataset.from_tensor_slices(order).batch(batch_size), seeds
        ).map(lambda indices, located: (indices, *located))

    # flat_map hides the length from tf.data; Keras's progress bar needs it.
    return keys.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(num_batches))


def mixup_alpha_table(config: TrainConfig, steps_per_epoch: int):
    """The mixup alpha of every batch of the run, as the pipeline looks it up.

    Row `e` holds epoch `e`'s alphas: one column in the epoch unit (every
    batch of the epoch shares it), `steps_per_epoch` columns in the step unit
    (`config.schedule_unit`). The values are
    `keras_seresnet.schedules.mixup_alpha_at` rounded to float32.

    Args:
        config: the run's `TrainConfig` (`epochs`, `mixup_alpha`,
            `mixup_alpha_min`, `schedule_unit`).
        steps_per_epoch: batches per pass, >= 1.

    Returns:
        float32 numpy array [epochs, 1] or [epochs, steps_per_epoch].
    """
    columns = steps_per_epoch if config.schedule_unit == "step" else 1
    return np.array(
        [
            [mixup_alpha_at(e, config, b, steps_per_epoch) for b in range(columns)]
            for e in range(config.epochs)
        ],
        np.float32,
    )


def make_train_dataset(
    x,
    y,
    config: TrainConfig,
    mixup_alpha=None,
    *,
    seed=None,
    epoch=None,
    jit_compile=True,
    with_mixup_alpha=False,
):
    """The training pipeline: shuffled, augmented, mixed batches, a new order every epoch.

    Args:
        x: uint8 images [N, 32, 32, 3], RGB, 0..255.
        y: integer labels [N] (or [N, 1]) in [0, config.num_classes).
        config: the run's `TrainConfig`: `batch_size`, `num_classes`, the
            augmentation switches (`color_jitter`, `grayscale`,
            `horizontal_flip`, `mixup_cutout`) and their parameters, and the
            alpha schedule (`epochs`, `mixup_alpha`, `mixup_alpha_min`,
            `schedule_unit`).
        mixup_alpha: where the alpha of a dataset built without `epoch`
            comes from: a float32 scalar `tf.Variable` (`make_mixup_alpha`),
            read for every batch, so an assignment reaches the next batches
            made (those already prefetched keep the alpha they were mixed
            with). None: a new variable holding `config.mixup_alpha`. Unused
            when `epoch` is given (the schedule decides) or
            `config.mixup_cutout` is False.
        seed: seed of the shuffle and every augmentation, an integer in
            [0, `MAX_SEED`]. Default `config.seed`.
        epoch: the zero-based epoch whose batches each pass makes: an int
            `tf.Variable` (`make_epoch_variable`), read when a pass starts,
            or a plain int. The batches are a function of (seed, epoch)
            only: any dataset built with the same arguments, in any process,
            gives the same batches for the same epoch. Each batch is mixed
            with the alpha schedule's value for its epoch (and, with
            `schedule_unit="step"`, its index in the pass:
            `mixup_alpha_table`), whatever runs ahead in the prefetch
            buffer; epochs past `config.epochs - 1` use the last epoch's
            row. Default None: each pass draws a fresh order from a stream
            seeded by `seed` (the first pass of two datasets with the same
            seed agree), and the alpha comes from `mixup_alpha`.
        jit_compile: compile the per-batch augmentation with XLA. Default
            True: several times faster on CPU; the first batch of each shape
            (full batches, then the remainder) waits for a compilation of a
            few seconds. False runs the same ops one by one; results agree
            to float rounding.
        with_mixup_alpha: also yield each batch's alpha (a debugging and
            test aid). Needs `config.mixup_cutout`. Default False.

    Returns:
        A `tf.data.Dataset` of `(images, targets)` per epoch, or
        `(images, targets, alpha)` with `with_mixup_alpha`: images float32
        [B, 32, 32, 3] in [0, 255]; targets float32 [B, num_classes], one-hot,
        or mixed one-hot whose rows sum to 1 when mixup is on; alpha a
        float32 scalar. B = `config.batch_size`; the last batch keeps the
        remainder (as PyTorch's DataLoader does).

    Raises:
        TypeError: `config` is not a `TrainConfig`, or `mixup_alpha` not a
            `tf.Variable`.
        ValueError: bad `x`, `y`, `config`, `seed` or `epoch` (the message
            names which), or `with_mixup_alpha` without mixup.

    Example:

    >>> from keras_seresnet import TrainConfig
    >>> x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8)
    >>> dataset = make_train_dataset(x, y, TrainConfig(batch_size=4), epoch=make_epoch_variable())
    >>> images, targets = next(iter(dataset))
    >>> tuple(images.shape), tuple(targets.shape)
    ((4, 32, 32, 3), (4, 10))
    """
    check_config_type(config)
    config.validate()
    x, y = check_arrays(x, y, config.num_classes)
    if seed is not None and not (is_integer(seed) and 0 <= seed <= MAX_SEED):
        raise ValueError(
            f"Argument `seed` must be None or an integer in [0, {MAX_SEED}]. "
            f"Received: seed={seed!r}"
        )
    if (
        epoch is not None
        and not isinstance(epoch, tf.Variable)
        and not (is_integer(epoch) and epoch >= 0)
    ):
        raise ValueError(
            "Argument `epoch` must be None, a non-negative integer or an int "
            f"tf.Variable (`make_epoch_variable`). Received: epoch={epoch!r}"
        )
    if mixup_alpha is not None and not isinstance(mixup_alpha, tf.Variable):
        raise TypeError(
            "Argument `mixup_alpha` must be None or a float32 scalar tf.Variable "
            "(`make_mixup_alpha`); the schedule's starting value is "
            f"`config.mixup_alpha`. Received: mixup_alpha={mixup_alpha!r}"
        )
    if with_mixup_alpha and not config.mixup_cutout:
        raise ValueError(
            "Argument `with_mixup_alpha` needs mixup on (config.mixup_cutout=True). "
            f"Received: with_mixup_alpha=True, mixup_cutout={config.mixup_cutout}"
        )
    seed = config.seed if seed is None else int(seed)
    layers = train_augmentations(config)
    images, labels, count = tf.constant(x), tf.constant(y), len(x)

    # XLA fuses the elementwise work of all the augmentations into a few
    # loops: about 5x faster on CPU than op by op. The random parameters are
    # drawn outside (tiny tensors), which keeps the compiled graph small.
    apply = tf.function(
        lambda batch, drawn: apply_augmentations(batch, layers, drawn), jit_compile=jit_compile
    )

    def augment(indices, batch_seed, key, index):
        augment_seed, mixup_seed = tf.unstack(tf.random.experimental.stateless_split(batch_seed, 2))
        batch = tf.cast(tf.gather(images, indices), tf.float32)
        targets = tf.one_hot(tf.gather(labels, indices), config.num_classes, dtype=tf.float32)
        drawn = sample_augmentations(layers, tf.shape(batch)[0], augment_seed)
        return apply(batch, drawn), targets, mixup_seed, key, index

    batches = _epoch_batches(count, config.batch_size, seed, epoch)
    dataset = batches.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if config.mixup_cutout:
        mix = _mixer(config, mixup_alpha, epoch, int(batches.cardinality()), with_mixup_alpha)
        dataset = dataset.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda batch, targets, *_: (batch, targets))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _mixer(config, mixup_alpha, epoch, steps_per_epoch, with_mixup_alpha):
    """The map function that mixes a batch with the alpha of its place in the run."""
    if epoch is None:
        variable = mixup_alpha if mixup_alpha is not None else make_mixup_alpha(config.mixup_alpha)

        def alpha_of(key, index):
            return variable.read_value()
    else:
        # A constant of the traced graph: the schedule's value for every batch,
        # looked up by the batch's own (epoch, index), not by when it is made.
        table = tf.constant(mixup_alpha_table(config, steps_per_epoch))
        last_row, last_column = table.shape[0] - 1, table.shape[1] - 1

        def alpha_of(key, index):
            return table[tf.minimum(key, last_row), tf.minimum(index, last_column)]

    mixup = MixUp(config.mixup_alpha)

    def mix(batch, targets, mixup_seed, key, index):
        alpha = alpha_of(key, index)
        transformations = mixup.sample_transformations(tf.shape(batch)[0], mixup_seed, alpha=alpha)
        batch, targets = mixup.mix(batch, targets, transformations)
        return (batch, targets, alpha) if with_mixup_alpha else (batch, targets)

    return mix


def make_eval_dataset(x, y, *, batch_size=128, num_classes=10):
    """Evaluation batches in order: no shuffling, no augmentation.

    Args:
        x: uint8 images [N, H, W, 3], 0..255.
        y: integer labels [N] (or [N, 1]) in [0, num_classes).
        batch_size: images per batch. Default 128.
        num_classes: length of the one-hot targets. Default 10.

    Returns:
        A `tf.data.Dataset` of `(images, targets)`: images float32
        [B, H, W, 3] equal to `x`'s values; targets float32 one-hot
        [B, num_classes]. The last batch keeps the remainder.

    Example:

    >>> x, y = np.zeros((5, 32, 32, 3), np.uint8), np.arange(5)
    >>> [len(images) for images, targets in make_eval_dataset(x, y, batch_size=2)]
    [2, 2, 1]
    """
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(
            f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
    x, y = check_arrays(x, y, num_classes)
    images, labels = tf.constant(x), tf.constant(y)

    def gather(indices):
        return (
            tf.cast(tf.gather(images, indices), tf.float32),
            tf.one_hot(tf.gather(labels, indices), num_classes, dtype=tf.float32),
        )

    return (
        tf.data.Dataset.range(len(x))
        .batch(batch_size)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
