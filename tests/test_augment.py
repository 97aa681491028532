"""The augmentation layers: conventions checked statistically and against references."""

import colorsys
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seresnet.data.augment import (
    Cutout,
    MixUp,
    PaddedRandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    TorchColorJitter,
    make_mixup_alpha,
)

SEED = tf.constant([7, 11], tf.int64)
# A flat colour whose channels all differ from its grey level, far from 0 and 1.
COLOUR = np.array([0.6, 0.4, 0.3])
GREY = float(COLOUR @ [0.2989, 0.587, 0.114])


def flat(n, colour=COLOUR, size=4):
    return tf.constant(np.broadcast_to(255.0 * colour, (n, size, size, 3)), tf.float32)


def run(layer, images, seed=SEED):
    transformations = layer.sample_transformations(tf.shape(images)[0], seed)
    return layer.augment_images(images, transformations).numpy(), transformations


def only(**factors):
    settings = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    settings.update(factors)
    return TorchColorJitter(**settings)


def assert_spans(values, low, high, slack=0.02):
    """All values in [low, high], and the sample reaches both ends."""
    assert values.min() >= low - 1e-5 and values.max() <= high + 1e-5, (values.min(), values.max())
    assert values.min() < low + slack and values.max() > high - slack


# --- color jitter -------------------------------------------------------------


def test_brightness_multiplies_by_a_factor_in_0p8_1p2():
    out, _ = run(only(brightness=0.2), flat(400))
    factors = out[:, 0, 0] / (255.0 * COLOUR)  # [N, 3]: the same factor on every channel
    np.testing.assert_allclose(factors, factors[:, :1].repeat(3, 1), atol=1e-5)
    assert_spans(factors[:, 0], 0.8, 1.2)


@pytest.mark.parametrize("name", ["contrast", "saturation"])
def test_contrast_and_saturation_blend_with_grey_by_a_factor_in_0p8_1p2(name):
    # On a flat image both blend towards its grey level: out = f x + (1 - f) grey.
    out, _ = run(only(**{name: 0.2}), flat(400))
    factors = (out[:, 0, 0] / 255.0 - GREY) / (COLOUR - GREY)
    np.testing.assert_allclose(factors, factors[:, :1].repeat(3, 1), atol=1e-4)
    assert_spans(factors[:, 0], 0.8, 1.2)


def test_hue_shifts_within_0p05_of_the_circle_and_keeps_s_and_v():
    out, transformations = run(only(hue=0.05), flat(400))
    h0, s0, v0 = colorsys.rgb_to_hsv(*COLOUR)
    hsv = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in out[:, 0, 0]])
    shift = (hsv[:, 0] - h0 + 0.5) % 1.0 - 0.5
    assert_spans(shift, -0.05, 0.05, slack=0.005)
    np.testing.assert_allclose(shift, transformations["hue"].numpy(), atol=1e-4)
    np.testing.assert_allclose(hsv[:, 1], s0, atol=1e-4)
    np.testing.assert_allclose(hsv[:, 2], v0, atol=1e-4)


def torchvision_jitter(image, b, c, s, h, order):
    """torchvision.transforms.functional on a float image in [0, 1], in numpy."""
    x = image.astype(np.float64)

    def grey(x):
        return x @ [0.2989, 0.587, 0.114]

    for op in order:
        if op == 0:
            x = np.clip(b * x, 0, 1)
        elif op == 1:
            x = np.clip(c * x + (1 - c) * grey(x).mean(), 0, 1)
        elif op == 2:
            x = np.clip(s * x + (1 - s) * grey(x)[..., None], 0, 1)
        else:
            hsv = np.array([colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3)])
            hsv[:, 0] = (hsv[:, 0] + h) % 1.0
            x = np.array([colorsys.hsv_to_rgb(*p) for p in hsv]).reshape(x.shape)
    return x


def test_jitter_matches_torchvision_for_hand_set_factors_in_every_order():
    orders = list(itertools.permutations(range(4)))
    n = len(orders)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (n, 6, 6, 3))
    images[0] = 0.95  # bright: brightness 1.2 clips
    factors = rng.uniform(0.8, 1.2, (3, n))
    factors[0, 0] = 1.2
    hue = rng.uniform(-0.05, 0.05, n)
    transformations = {
        "brightness": tf.constant(factors[0], tf.float32),
        "contrast": tf.constant(factors[1], tf.float32),
        "saturation": tf.constant(factors[2], tf.float32),
        "hue": tf.constant(hue, tf.float32),
        "order": tf.constant(orders, tf.int32),
    }
    out = TorchColorJitter().augment_images(tf.constant(255 * images, tf.float32), transformations)
    expected = np.stack(
        [torchvision_jitter(images[i], *factors[:, i], hue[i], orders[i]) for i in range(n)]
    )
    np.testing.assert_allclose(out.numpy() / 255.0, expected, atol=2e-5)


def test_jitter_order_is_a_uniform_permutation_per_image():
    order = TorchColorJitter().sample_transformations(4800, SEED)["order"].numpy()
    assert (np.sort(order, axis=1) == np.arange(4)).all()
    counts = np.unique([tuple(o) for o in order], axis=0, return_counts=True)[1]
    assert len(counts) == 24 and counts.min() > 140 and counts.max() < 260  # expected 200


def test_jitter_stays_in_range_and_changes_images():
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (16, 8, 8, 3)), tf.float32)
    out, _ = run(TorchColorJitter(), images)
    assert out.min() >= 0.0 and out.max() <= 255.0 + 1e-3
    assert np.abs(out - images.numpy()).mean() > 1.0


# --- geometry -------------------------------------------------------------------


def coordinate_image(n):
    """R = 8 * row, G = 8 * column, B = 255: each pixel says where it came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([8.0 * rows, 8.0 * cols, np.full((32, 32), 255.0)], axis=-1)
    return tf.constant(np.broadcast_to(image, (n, 32, 32, 3)), tf.float32)


def test_crop_is_an_integer_shift_within_4_pixels_with_zero_fill():
    images = coordinate_image(600)
    out, offsets = run(PaddedRandomCrop(4), images)
    shifts = offsets.numpy() - 4  # source = destination + shift
    assert_spans(shifts[:, 0], -4, 4, slack=0.5)
    assert_spans(shifts[:, 1], -4, 4, slack=0.5)
    source = images.numpy()[0]
    padded = np.pad(source, [(4, 4), (4, 4), (0, 0)])
    for i in range(0, 600, 37):
        dy, dx = offsets.numpy()[i]
        np.testing.assert_array_equal(out[i], padded[dy : dy + 32, dx : dx + 32])
    # The centre pixel always comes from inside the image: its shift is read off it.
    np.testing.assert_array_equal(out[:, 16, 16, :2] / 8 - 16, shifts)


def test_flip_rate_near_half_and_exact_mirror():
    images = coordinate_image(2000)
    out, _ = run(RandomHorizontalFlip(0.5), images)
    flipped = out[:, 0, 0, 1] == 8.0 * 31
    assert abs(flipped.mean() - 0.5) < 0.05  # binomial std 0.011
    np.testing.assert_array_equal(out[flipped], images.numpy()[flipped][:, :, ::-1])
    np.testing.assert_array_equal(out[~flipped], images.numpy()[~flipped])


def test_cutout_is_16x16_or_clipped_filled_with_the_mean_colour():
    fill = (125.3, 123.0, 113.9)
    out, _ = run(Cutout(16, fill_value=fill), tf.fill([2000, 32, 32, 3], 999.0))
    masked = (out == np.array(fill, np.float32)).all(-1)
    assert ((out == 999.0).all(-1) | masked).all()
    rows, cols = masked.any(2), masked.any(1)
    heights, widths = rows.sum(1), cols.sum(1)
    assert (masked.sum((1, 2)) == heights * widths).all()  # a rectangle
    top, left = rows.argmax(1), cols.argmax(1)
    for start, side in ((top, heights), (left, widths)):
        assert side.min() >= 8 and side.max() == 16
        # Centre c = start + 8 unless clipped at the top/left edge; the side is
        # 16 minus what falls outside the image.
        centre = np.where(start > 0, start + 8, side - 8)
        np.testing.assert_array_equal(side, np.minimum(centre + 8, 32) - np.maximum(centre - 8, 0))
        assert centre.min() == 0 and centre.max() == 31  # centres cover the image
    assert (heights < 16).mean() > 0.3  # clipped about half the time: 16 of 32 centres


def test_grayscale_rate_and_weights():
    out, chosen = run(RandomGrayscale(0.3), flat(2000))
    chosen = chosen.numpy()
    assert abs(chosen.mean() - 0.3) < 0.04
    np.testing.assert_allclose(out[chosen], 255.0 * GREY, rtol=1e-5)
    assert (out[~chosen] == flat(1).numpy()).all()


# --- mixup ----------------------------------------------------------------------


def test_mixup_one_lambda_per_batch_rows_sum_to_one():
    images = tf.constant(np.arange(8).reshape(8, 1, 1, 1) * np.ones((8, 2, 2, 3)), tf.float32)
    labels = tf.one_hot(np.arange(8), 8)
    layer = MixUp(make_mixup_alpha(0.4))
    transformations = layer.sample_transformations(8, SEED)
    mixed, targets = (t.numpy() for t in layer.mix(images, labels, transformations))
    weight, permutation = transformations["lambda"].numpy(), transformations["permutation"].numpy()
    assert sorted(permutation) == list(range(8))
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    expected = weight * np.arange(8) + (1 - weight) * permutation
    np.testing.assert_allclose(mixed[:, 0, 0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(
        targets[np.arange(8), np.arange(8)],
        np.where(permutation == np.arange(8), 1.0, weight),
        rtol=1e-5,
    )


def mean_lambda_spread(layer, draws=2000):
    draw = tf.function(
        lambda seeds: tf.map_fn(
            lambda seed: layer.sample_transformations(4, seed)["lambda"],
            seeds,
            fn_output_signature=tf.float32,
        )
    )
    lambdas = draw(tf.random.experimental.stateless_split(SEED, draws)).numpy()
    assert ((lambdas >= 0) & (lambdas <= 1)).all()
    return (lambdas * (1 - lambdas)).mean()


@pytest.mark.parametrize("alpha", [0.4, 0.1])
def test_mixup_lambda_follows_beta_alpha(alpha):
    # Beta(a, a): E[lambda (1 - lambda)] = a / (2 (2a + 1)).
    spread = mean_lambda_spread(MixUp(alpha), draws=1500)
    assert abs(spread - alpha / (2 * (2 * alpha + 1))) < 0.012


# --- keras-cv layer protocol ---------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        TorchColorJitter(0.1, 0.2, 0.3, 0.04, seed=3),
        RandomGrayscale(0.2, seed=1),
        PaddedRandomCrop(2, seed=4),
        RandomHorizontalFlip(0.25),
        Cutout(8, (1.0, 2.0, 3.0)),
        MixUp(0.3, seed=5),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_are_registered_serialisable_and_callable(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)), tf.float32)
    if isinstance(layer, MixUp):
        out = clone({"images": images, "labels": tf.one_hot([0, 1, 2, 3], 4)})
        np.testing.assert_allclose(out["labels"].numpy().sum(1), 1.0, rtol=1e-6)
        out = out["images"]
    else:
        out = clone(images)
    assert out.shape == images.shape and out.dtype == tf.float32


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="brightness"):
        TorchColorJitter(brightness=1.5)
    with pytest.raises(ValueError, match="padding"):
        PaddedRandomCrop(-1)
    with pytest.raises(ValueError, match="value"):
        make_mixup_alpha(0.0)


def test_layers_use_only_keras_cv_public_hooks():
    import inspect

    from keras_seresnet.data import augment

    source = inspect.getsource(augment)
    for private in ("_random_generator", "_batch_augment", "keras.src"):
        assert private not in source


@pytest.mark.parametrize(
    "make",
    [
        lambda: TorchColorJitter(seed=5),
        lambda: PaddedRandomCrop(4, seed=5),
        lambda: Cutout(8, seed=5),
    ],
    ids=["jitter", "crop", "cutout"],
)
def test_a_seeded_layer_called_directly_is_reproducible_and_draws_anew_each_call(make):
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)), tf.float32)
    first, second = make(), make()
    a1, a2 = first(images).numpy(), first(images).numpy()
    np.testing.assert_array_equal(a1, second(images).numpy())  # same seed, same draws
    np.testing.assert_array_equal(a2, second(images).numpy())
    assert not np.array_equal(a1, a2)  # the layer's generator moves on


def test_mixup_needs_labels_and_mixes_with_a_given_alpha():
    layer = MixUp(0.4, seed=1)
    with pytest.raises(ValueError, match="MixUp needs labels"):
        layer(tf.zeros((4, 8, 8, 3)))
    with pytest.raises(ValueError, match="Argument `alpha` must be > 0"):
        MixUp(0.0)
    # A per-batch alpha overrides the layer's: a huge alpha gives lambda near 0.5.
    lambdas = [
        float(
            layer.sample_transformations(4, tf.constant([i, 2], tf.int64), alpha=1000.0)["lambda"]
        )
        for i in range(20)
    ]
    assert max(abs(lam - 0.5) for lam in lambdas) < 0.05
