"""The recipe's training augmentations as batched keras-cv-style layers.

Each layer is a registered, serialisable
`keras_cv.layers.VectorizedBaseImageAugmentationLayer`: it draws one set of
random parameters for the whole batch with `sample_transformations(batch_size,
seed)` (stateless: the same seed gives the same parameters) and applies them
with `augment_images(images, transformations)`, in fully vectorised
TensorFlow ops (no per-image loops, no `vectorized_map`). Called as a plain
layer, `layer(images)` draws its seed from the layer's own
`keras.random.SeedGenerator(seed)` through keras-cv's public hook
`get_random_transformation_batch`; the training pipeline (`pipeline.py`) instead passes a
seed derived from the run's one seed, so a run is reproducible even with
parallel `tf.data` maps (a shared stateful generator would hand out numbers in
whatever order the parallel calls happen to run).

Images are float32 NHWC in `value_range` (the pipeline uses raw pixels
[0, 255]; the model normalises inside).

keras-cv 0.9.0 is used where it is exact and fast, and replaced where not:

| recipe step | keras-cv 0.9.0 | here |
| --- | --- | --- |
| brightness (x factor in [0.8, 1.2]) | `RandomBrightness` adds a delta | `TorchColorJitter` |
| contrast (blend with mean grey) | `RandomContrast` blends each channel with its own mean | `TorchColorJitter` |
| saturation (blend with greyscale) | `RandomSaturation` scales HSV saturation by f / (1 - f) | `TorchColorJitter` |
| hue (+-0.05 of the circle) | `RandomHue` rotates HSV hue: exact | `RandomHue.augment_images` inside `TorchColorJitter` |
| the four in random order per image | `RandomColorJitter` uses one fixed order | `TorchColorJitter` |
| pad 4 + random 32x32 crop | `RandomCrop` resamples with `crop_and_resize` at fractional offsets | `PaddedRandomCrop` |
| horizontal flip p=0.5 | `RandomFlip`: exact | `RandomFlip.augment_images` |
| 16x16 cutout, mean-colour fill | `RandomCutout` fills one scalar for all channels | `Cutout` |
| greyscale (ablation) | `Grayscale`: exact, always on | `RandomGrayscale` applies it with a rate |
| mixup, one lambda per batch, decaying alpha | `MixUp`: one lambda per image, alpha a Python float fixed in the graph | `MixUp`: alpha read at run time (a `tf.Variable`, or given per batch) |
"""

import keras
import keras_cv
import tensorflow as tf

from keras_seresnet.config import TrainConfig

# The recipe's numbers, for the defaults below (TrainConfig is their one home).
_RECIPE = TrainConfig()
_RECIPE_FILL = tuple(255.0 * m for m in _RECIPE.mean)  # the mean colour, in [0, 255]


def _check_range(name, value, low, high):
    if not low <= value <= high:
        raise ValueError(f"Argument `{name}` must be in [{low}, {high}]. Received: {name}={value}")


def _check_value_range(value_range):
    if len(value_range) != 2 or not value_range[0] < value_range[1]:
        raise ValueError(
            "Argument `value_range` must be (low, high) with low < high. "
            f"Received: value_range={value_range}"
        )


def _per_image(values):
    return tf.reshape(values, [-1, 1, 1, 1])


class _StatelessAugmentation(keras_cv.layers.VectorizedBaseImageAugmentationLayer):
    """Base: transformations come from `sample_transformations(batch, seed)`.

    keras-cv's public hooks do the rest: `get_random_transformation_batch`
    draws a seed from the layer's own `keras.random.SeedGenerator` (seeded
    by `seed`) and calls `sample_transformations`; keras-cv's `call` then
    hands the result to `augment_images` (and `augment_labels`).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sample_transformations(self, batch_size, seed):
        """Random parameters for `batch_size` images from a stateless seed.

        Args:
            batch_size: int or scalar int32 tensor.
            seed: int32/int64 tensor [2], as for `tf.random.stateless_*`.

        Returns:
            A tensor or dict of tensors for `augment_images`.
        """
        raise NotImplementedError

    def build(self, input_shape):
        # No weights; the keras-cv layers some hold are used as functions.
        self.built = True

    def get_random_transformation_batch(self, batch_size, **kwargs):
        return self.sample_transformations(batch_size, self.seed_generator.next())

    def augment_labels(self, labels, transformations, **kwargs):
        return labels

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class TorchColorJitter(_StatelessAugmentation):
    """torchvision's `ColorJitter(brightness, contrast, saturation, hue)`, batched.

    For each image, like torchvision: factors b, c, s uniform in
    [1 - brightness, 1 + brightness] etc., a hue shift h uniform in
    [-hue, hue] (a fraction of the full hue circle), and the four operations
    in a random order (a uniform random permutation per image). In [0, 1]
    units, as `torchvision.transforms.functional` does on float tensors:

        brightness: x <- clip(b * x)
        contrast:   x <- clip(c * x + (1 - c) * mean(grey(x)))   one mean per image
        saturation: x <- clip(s * x + (1 - s) * grey(x))         per pixel
        hue:        HSV(x), H <- (H + h) mod 1, back to RGB
        grey(x) = 0.2989 R + 0.587 G + 0.114 B; clip to [0, 1] after each.

    Why not keras-cv's `RandomColorJitter`: its brightness adds a delta
    instead of multiplying, its contrast blends each channel with that
    channel's own mean instead of the grey mean, its saturation scales the
    HSV saturation by f / (1 - f) (0.5 is the no-op) instead of blending
    with the greyscale image, and it always applies the four in one fixed
    order. Its hue step is exact and is used here: the hue shift is
    `keras_cv.layers.RandomHue.augment_images`.

    Batched, and still exact: with f = 1 an operation is the identity (hue with a zero
    shift too), so per image the sequence is "linear steps before its hue
    step, hue, linear steps after". Brightness, contrast and saturation are
    all a blend `clip(f * x + a * mean + s * grey)` with per-image scalars
    (brightness: a = s = 0; contrast: a = 1 - f; saturation: s = 1 - f), so
    each step is one blend for the whole batch, whichever operation each
    image takes. The batch goes through the costly HSV round trip once, with
    every image's own shift, between the steps that precede each image's hue
    step and those that follow it. No per-image loop and no dynamic shapes,
    so the layer also compiles with XLA.

    torchvision applied to PIL images (as the reference notebook did) rounds
    to uint8 after each step; this works in float throughout.

    Args:
        brightness: jitter of the brightness factor, in [0, 1]. Default 0.2.
        contrast: jitter of the contrast factor, in [0, 1]. Default 0.2.
        saturation: jitter of the saturation factor, in [0, 1]. Default 0.2.
        hue: maximum hue shift, fraction of the circle, in [0, 0.5].
            Default 0.05.
        value_range: (low, high) of the input pixels. Default (0, 255).
        seed: seed of the layer's own generator (used by `layer(images)`).

    Input/output: float [B, H, W, 3] RGB in `value_range`.
    """

    _BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)

    def __init__(
        self,
        brightness=_RECIPE.brightness,
        contrast=_RECIPE.contrast,
        saturation=_RECIPE.saturation,
        hue=_RECIPE.hue,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            _check_range(name, value, 0.0, 1.0)
        _check_range("hue", hue, 0.0, 0.5)
        _check_value_range(value_range)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.value_range = tuple(value_range)
        # keras-cv's RandomHue draws a shift of up to factor / 2 either way.
        self._hue_layer = keras_cv.layers.RandomHue(factor=(0.0, 2 * self.hue), value_range=(0, 1))

    def sample_transformations(self, batch_size, seed):
        seeds = tf.random.experimental.stateless_split(seed, 5)

        def factors(jitter, s):
            return tf.random.stateless_uniform([batch_size], s, 1.0 - jitter, 1.0 + jitter)

        return {
            "brightness": factors(self.brightness, seeds[0]),
            "contrast": factors(self.contrast, seeds[1]),
            "saturation": factors(self.saturation, seeds[2]),
            "hue": tf.random.stateless_uniform([batch_size], seeds[3], -self.hue, self.hue),
            # A uniform random permutation of the four operations per image.
            "order": tf.argsort(tf.random.stateless_uniform([batch_size, 4], seeds[4]), axis=1),
        }

    def augment_images(self, images, transformations, **kwargs):
        low, high = self.value_range
        x = (tf.cast(images, tf.float32) - low) / (high - low)
        order = transformations["order"]  # [B, 4]: the operation of each step
        hue_step = tf.argmax(tf.cast(order == self._HUE, tf.int32), axis=1, output_type=tf.int32)
        jitter = tf.stack(
            [
                transformations["brightness"],
                transformations["contrast"],
                transformations["saturation"],
            ],
            axis=1,
        )

        def linear_steps(x, steps, active):
            for step in steps:
                op = order[:, step]
                on = active(step) & (op != self._HUE)
                factor = tf.where(on, tf.gather(jitter, tf.minimum(op, 2), batch_dims=1), 1.0)
                to_mean = tf.where(on & (op == self._CONTRAST), 1.0 - factor, 0.0)
                to_grey = tf.where(on & (op == self._SATURATION), 1.0 - factor, 0.0)
                grey = tf.image.rgb_to_grayscale(x)
                mean = tf.reduce_mean(grey, axis=[1, 2, 3], keepdims=True)
                x = tf.clip_by_value(
                    _per_image(factor) * x
                    + _per_image(to_mean) * mean
                    + _per_image(to_grey) * grey,
                    0.0,
                    1.0,
                )
            return x

        x = linear_steps(x, range(3), lambda step: step < hue_step)
        x = self._hue_layer.augment_images(x, transformations["hue"])
        x = linear_steps(x, range(1, 4), lambda step: step > hue_step)
        return x * (high - low) + low

    def get_config(self):
        return {
            **super().get_config(),
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "hue": self.hue,
            "value_range": list(self.value_range),
        }


@keras.saving.register_keras_serializable(package="keras_seresnet")
class RandomGrayscale(_StatelessAugmentation):
    """torchvision's `RandomGrayscale(p)`: greyscale (3 equal channels) with probability `rate`.

    The greyscale conversion is keras-cv's `Grayscale(output_channels=3)`
    (`tf.image.rgb_to_grayscale`, torchvision's weights 0.2989, 0.587,
    0.114); keras-cv has no random-rate version, so this layer draws the
    per-image choice.

    Args:
        rate: probability per image, in [0, 1]. Default 0.1 (torchvision's).
        seed: seed of the layer's own generator.

    Input/output: float [B, H, W, 3] RGB.
    """

    def __init__(self, rate=_RECIPE.grayscale_rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        _check_range("rate", rate, 0.0, 1.0)
        self.rate = float(rate)
        self._grayscale = keras_cv.layers.Grayscale(output_channels=3)

    def sample_transformations(self, batch_size, seed):
        return tf.random.stateless_uniform([batch_size], seed) < self.rate

    def augment_images(self, images, transformations, **kwargs):
        grey = self._grayscale.augment_images(images)
        return tf.where(tf.reshape(transformations, [-1, 1, 1, 1]), grey, images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class PaddedRandomCrop(_StatelessAugmentation):
    """torchvision's `RandomCrop(size, padding)`: zero-pad, then crop at a random offset.

    The crop keeps the input size; offsets are integers uniform in
    [0, 2 * padding] on each axis, that is, a shift of up to `padding`
    pixels either way with zeros (black) coming in. Done as two batched
    gathers of rows and columns.

    Why not keras-cv's `RandomCrop`: it crops with `tf.image.crop_and_resize`
    at fractional offsets and box coordinates normalised by the padded size,
    so its output is a nearest-neighbour resampling (some rows repeated or
    skipped), not an exact integer shift.

    Args:
        padding: zero pixels added on every side. Default 4.
        seed: seed of the layer's own generator.

    Input/output: float [B, H, W, C].
    """

    def __init__(self, padding=_RECIPE.crop_padding, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(
                f"Argument `padding` must be a non-negative integer. Received: padding={padding}"
            )
        self.padding = padding

    def sample_transformations(self, batch_size, seed):
        return tf.random.stateless_uniform(
            [batch_size, 2], seed, 0, 2 * self.padding + 1, dtype=tf.int32
        )

    def augment_images(self, images, transformations, **kwargs):
        p = self.padding
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = transformations[:, :1] + tf.range(height)[tf.newaxis]
        cols = transformations[:, 1:] + tf.range(width)[tf.newaxis]
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, cols, axis=2, batch_dims=1)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class RandomHorizontalFlip(_StatelessAugmentation):
    """Horizontal flip with probability `rate`: keras-cv's `RandomFlip`, seeded statelessly.

    The flip itself is `keras_cv.layers.RandomFlip("horizontal", rate)`'s
    `augment_images` (exact); this layer only draws its transformation
    from a stateless seed so the pipeline is reproducible.

    Args:
        rate: flip probability per image. Default 0.5.
        seed: seed of the layer's own generator.

    Input/output: float [B, H, W, C].
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        _check_range("rate", rate, 0.0, 1.0)
        self.rate = float(rate)
        self._flip = keras_cv.layers.RandomFlip("horizontal", rate=self.rate)

    def sample_transformations(self, batch_size, seed):
        # keras-cv flips an image when its uniform draw exceeds 1 - rate.
        return {
            "flip_horizontals": tf.random.stateless_uniform([batch_size, 1], seed),
            "flip_verticals": tf.zeros([batch_size, 1]),
        }

    def augment_images(self, images, transformations, **kwargs):
        return self._flip.augment_images(images, transformations)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class Cutout(_StatelessAugmentation):
    """Cutout (DeVries & Taylor): one `size` x `size` square set to `fill_value`.

    The centre (cy, cx) is an integer pixel uniform over the whole image;
    the square covers rows [cy - size/2, cy + size/2) and the same columns,
    clipped at the borders, so near an edge it is smaller than size x size
    (as the reference's cutout). Built as a mask from broadcast iotas.

    Why not keras-cv's `RandomCutout`: its geometry is the same, but it fills
    with one scalar for all channels (`tf.fill`), and the recipe fills with
    the dataset's mean colour, which differs per channel (0 after the
    model's normalisation).

    Args:
        size: side of the square, pixels. Default 16.
        fill_value: per-channel fill, same units as the images. Default
            255 * (0.4914, 0.4822, 0.4465), CIFAR-10's mean in [0, 255].
        seed: seed of the layer's own generator.

    Input/output: float [B, H, W, C].
    """

    def __init__(
        self,
        size=_RECIPE.cutout_size,
        fill_value=_RECIPE_FILL,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(size, int) or size < 0:
            raise ValueError(
                f"Argument `size` must be a non-negative integer. Received: size={size}"
            )
        self.size = size
        self.fill_value = tuple(float(v) for v in fill_value)

    def sample_transformations(self, batch_size, seed):
        # Uniform over [0, 1) scaled in `augment_images`: the image size is
        # known only there.
        return tf.random.stateless_uniform([batch_size, 2], seed)

    def augment_images(self, images, transformations, **kwargs):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        size = tf.stack([height, width])
        centres = tf.cast(transformations * tf.cast(size, tf.float32), tf.int32)
        centres = tf.minimum(centres, size - 1)
        half = self.size // 2

        def inside(axis_len, centre):
            index = tf.range(axis_len)[tf.newaxis]
            return (index >= centre[:, tf.newaxis] - half) & (
                index < centre[:, tf.newaxis] - half + self.size
            )

        mask = (
            inside(height, centres[:, 0])[:, :, tf.newaxis, tf.newaxis]
            & inside(width, centres[:, 1])[:, tf.newaxis, :, tf.newaxis]
        )
        fill = tf.constant(self.fill_value, dtype=images.dtype)
        return tf.where(mask, fill, images)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "fill_value": list(self.fill_value)}


def make_mixup_alpha(value=_RECIPE.mixup_alpha):
    """The mixup alpha as a variable that a running `tf.data` pipeline reads.

    `MixUp(variable)` reads it each time it mixes a batch, so an assignment
    (`alpha.assign(a)`, e.g. by the alpha-decay callback) reaches a traced
    pipeline (a Python float would be frozen into the graph). The package's
    training dataset built with an `epoch` does not need it: it looks every
    batch's alpha up from the schedule.

    Args:
        value: the initial alpha, > 0. Default 0.4 (the recipe's epoch 0).

    Returns:
        A non-trainable float32 scalar `tf.Variable` named "mixup_alpha".
    """
    if not value > 0:
        raise ValueError(f"Argument `value` must be > 0. Received: value={value}")
    return tf.Variable(float(value), trainable=False, dtype=tf.float32, name="mixup_alpha")


@keras.saving.register_keras_serializable(package="keras_seresnet")
class MixUp(_StatelessAugmentation):
    """Mixup on a batch as the reference notebook does it: one lambda per batch.

    lambda ~ Beta(alpha, alpha) (sampled as G1 / (G1 + G2) with G ~
    Gamma(alpha), in float64 so that tiny gammas at small alpha cannot
    both underflow to 0); a uniform random permutation pairs each image
    with another; images and one-hot targets become
    `lambda * x + (1 - lambda) * x[perm]`, so target rows still sum to 1.

    Why not keras-cv's `MixUp`: it draws one lambda per image and keeps alpha
    as a Python float fixed when the graph is traced, so a decaying alpha
    would silently never change. Here alpha is read at run time: from a
    `tf.Variable`, or given per batch to `sample_transformations`.

    Args:
        alpha: a float > 0, or a scalar float32 `tf.Variable` (see
            `make_mixup_alpha`) read at every batch. Default 0.4.
        seed: seed of the layer's own generator.

    Call: `layer({"images": [B, H, W, C] float, "labels": [B, K] float})`
    returns the same dict, mixed (keras-cv's `augment_images` and
    `augment_labels` with one transformation).
    """

    def __init__(self, alpha=_RECIPE.mixup_alpha, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(alpha, tf.Variable) and not alpha > 0:
            raise ValueError(f"Argument `alpha` must be > 0. Received: alpha={alpha}")
        self.alpha = alpha

    def sample_transformations(self, batch_size, seed, alpha=None):
        """lambda and the pairing permutation for one batch (stateless).

        Args:
            batch_size: int or scalar int32 tensor.
            seed: int tensor [2].
            alpha: this batch's alpha (float or float32 scalar tensor);
                None: the layer's `alpha`.

        Returns:
            `{"lambda": float32 scalar in [0, 1], "permutation": int32 [B]}`.
        """
        gamma_seed, permutation_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        alpha = tf.cast(self.alpha if alpha is None else alpha, tf.float64)
        gammas = tf.random.stateless_gamma([2], gamma_seed, alpha=alpha, dtype=tf.float64)
        weight = tf.cast(gammas[0] / (gammas[0] + gammas[1]), tf.float32)
        permutation = tf.argsort(tf.random.stateless_uniform([batch_size], permutation_seed))
        return {"lambda": weight, "permutation": permutation}

    def mix(self, images, labels, transformations):
        """Mixes a batch with its permutation; returns `(images, labels)`."""
        return self.augment_images(images, transformations), self.augment_labels(
            labels, transformations
        )

    def get_random_transformation_batch(self, batch_size, labels=None, **kwargs):
        if labels is None:
            raise ValueError(
                "MixUp needs labels to mix: call it on {'images': ..., 'labels': "
                "one-hot floats}. Received: no labels"
            )
        return super().get_random_transformation_batch(batch_size, **kwargs)

    def augment_images(self, images, transformations, **kwargs):
        return _blend(images, transformations)

    def augment_labels(self, labels, transformations, **kwargs):
        return _blend(tf.cast(labels, tf.float32), transformations)

    def get_config(self):
        alpha = (
            float(self.alpha.numpy()) if isinstance(self.alpha, tf.Variable) else float(self.alpha)
        )
        return {**super().get_config(), "alpha": alpha}


def _blend(values, transformations):
    weight, permutation = transformations["lambda"], transformations["permutation"]
    weight = tf.cast(weight, values.dtype)
    return weight * values + (1.0 - weight) * tf.gather(values, permutation)
