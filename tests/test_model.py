import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seresnet import PARAMETER_BUDGET, TrainConfig, build_from_config, build_seresnet
from keras_seresnet.config import ConfigError
from tests.tiny_model import TINY_MODEL


def _trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_default_parameter_counts(default_model):
    assert _trainable_count(default_model) == 2_818_122
    assert default_model.count_params() == 2_822_922


def test_ablation_model5_has_no_se_layers_and_fewer_parameters():
    model = build_seresnet(use_se=False)
    assert not [layer.name for layer in model.layers if "_se_" in layer.name]
    # SE adds 2*C*C/16 kernel weights per block: 2 blocks of 128 and 2 of 256.
    se_weights = 2 * (2 * 128 * 128 // 16) + 2 * (2 * 256 * 256 // 16)
    assert _trainable_count(model) == 2_818_122 - se_weights == 2_797_642
    assert model.count_params() == 2_802_442


def test_se_sits_only_in_stages_3_and_4(default_model):
    se_blocks = sorted({layer.name[:13] for layer in default_model.layers if "_se_" in layer.name})
    assert se_blocks == ["stage3_block1", "stage3_block2", "stage4_block1", "stage4_block2"]


def test_parameter_budget_error_names_count_and_budget():
    with pytest.raises(ValueError, match=r"5,000,000") as info:
        build_seresnet(widths=(64, 128, 256, 512))
    assert "parameters" in str(info.value)
    count = int(str(info.value).split(" has ")[1].split(" ")[0].replace(",", ""))
    assert count > PARAMETER_BUDGET
    lifted = build_seresnet(widths=(64, 128, 256, 512), max_params=None)
    assert lifted.count_params() == count


def test_bad_architecture_arguments_fail_early():
    with pytest.raises(ValueError, match="widths"):
        build_seresnet(widths=(32, 64), blocks=(2, 2, 2))
    with pytest.raises(ValueError, match="se_stages"):
        build_seresnet(se_stages=(5,))
    with pytest.raises(ValueError, match="se_reduction"):
        build_seresnet(se_reduction=256)


def test_output_shape_dtype_and_finite(default_model):
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    logits = default_model.predict(x, verbose=0)
    assert logits.shape == (3, 10)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_mean_colour_image_reaches_first_convolution_as_zeros(default_model):
    mean = np.array(TrainConfig().mean, dtype="float32") * 255.0
    image = np.broadcast_to(mean, (2, 32, 32, 3)).astype("float32")
    probe = keras.Model(default_model.input, default_model.get_layer("normalize").output)
    np.testing.assert_allclose(probe(image), 0.0, atol=1e-6)
    assert probe.output.shape[1:] == (32, 32, 3)
    # The first convolution's input is that normalised tensor, nothing else.
    stem = default_model.get_layer("stem_conv")
    assert stem.input is default_model.get_layer("normalize").output
    # And one std above the mean becomes exactly one.
    std = np.array(TrainConfig().std, dtype="float32") * 255.0
    np.testing.assert_allclose(probe(image + std), 1.0, atol=1e-5)


def test_batchnorm_uses_pytorch_momentum_and_epsilon(default_model):
    norms = [
        layer
        for layer in default_model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 1 + 8 * 2 + 3
    assert {(layer.momentum, layer.epsilon) for layer in norms} == {(0.9, 1e-5)}


def test_stride_two_convolutions_pad_symmetrically(default_model):
    padded = [
        layer for layer in default_model.layers if isinstance(layer, keras.layers.ZeroPadding2D)
    ]
    assert sorted(layer.name for layer in padded) == [
        "stage2_block1_conv1_pad",
        "stage3_block1_conv1_pad",
        "stage4_block1_conv1_pad",
    ]
    assert all(layer.padding == ((1, 1), (1, 1)) for layer in padded)


def test_layer_names_unique_prefixed_and_stable():
    first = [layer.name for layer in build_seresnet().layers]
    second = [layer.name for layer in build_seresnet().layers]
    assert first == second
    assert len(set(first)) == len(first)
    allowed = ("image", "normalize", "stem_", "head_", "logits")
    for name in first:
        assert name.startswith(allowed) or name.startswith(
            tuple(f"stage{s}_block{b}_" for s in range(1, 5) for b in (1, 2))
        ), name
    assert "stage3_block1_se_squeeze" in first
    assert "stage2_block1_shortcut_conv" in first


def test_build_from_config_matches_defaults(default_model):
    model = build_from_config(TrainConfig())
    assert [layer.name for layer in model.layers] == [layer.name for layer in default_model.layers]
    assert build_from_config(TrainConfig(use_se=False)).count_params() == 2_802_442


@pytest.mark.slow
def test_keras_file_round_trip_in_new_process(tmp_path, default_model):
    """A saved model loads in a new process that imports the package's models, fused as it was saved."""
    path = tmp_path / "model.keras"
    default_model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = default_model.predict(x, verbose=0)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_seresnet.models  # registers the fused BatchNormalization
        model = keras.models.load_model({str(path)!r})
        assert type(model.get_layer("stem_bn")).__module__ == "keras_seresnet.models.layers"
        np.save({str(tmp_path / "y.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        """
    )
    env = dict(
        os.environ,
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)


# keras_seresnet.models.layers.BatchNormalization: the model's BatchNorm, TensorFlow's fused kernel.

N, H, W, C = 8, 6, 6, 5


def _norm_pair(dtype="float32", channels=C, **kwargs):
    """The fused BatchNormalization and Keras's with the same random state.

    `dtype` is a dtype or a dtype policy name; the layers are built for
    [N, H, W, channels] inputs.
    """
    import keras_seresnet.models.layers as model_layers

    rng = np.random.default_rng(0)
    pair = [
        cls(momentum=0.9, epsilon=1e-5, dtype=dtype, **kwargs)
        for cls in (model_layers.BatchNormalization, keras.layers.BatchNormalization)
    ]
    for layer in pair:
        layer.build((None, H, W, channels))
    for a, b in zip(*(layer.weights for layer in pair)):
        value = rng.uniform(0.5, 1.5, a.shape)
        a.assign(value)
        b.assign(value)
    return pair


def _norm_inputs(dtype="float32"):
    return keras.ops.convert_to_tensor(
        np.random.default_rng(1).normal(2.0, 3.0, (N, H, W, C)), dtype
    )


def _op_types(layer, x, training):
    import tensorflow as tf

    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
    return {op.type for op in graph.get_operations()}


def _forward_and_gradients(layer, x, training):
    import tensorflow as tf

    weights = tf.constant(np.random.default_rng(3).normal(size=(N, H, W, C)), x.dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * tf.cast(weights, "float32"))
    return [y] + tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])


@pytest.mark.parametrize("training", [False, True])
def test_fused_batch_norm_runs_the_kernel_and_equals_keras(training):
    fused, plain = _norm_pair()
    x = _norm_inputs()
    assert "FusedBatchNormV3" in _op_types(fused, x, training)
    assert "FusedBatchNormV3" not in _op_types(plain, x, training)
    for a, b in zip(
        _forward_and_gradients(fused, x, training), _forward_and_gradients(plain, x, training)
    ):
        scale = np.abs(b.numpy()).max()
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5 * scale)


def test_fused_batch_norm_moving_statistics_equal_keras():
    fused, plain = _norm_pair()
    x = _norm_inputs()
    for _ in range(2):
        fused(x, training=True)
        plain(x, training=True)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-6
    )


def test_fused_batch_norm_runs_keras_code_for_float64():
    fused, plain = _norm_pair("float64")
    x = _norm_inputs("float64")
    assert "FusedBatchNormV3" not in _op_types(fused, x, True)
    np.testing.assert_array_equal(fused(x, training=True).numpy(), plain(x, training=True).numpy())
    np.testing.assert_array_equal(fused.moving_variance.numpy(), plain.moving_variance.numpy())


def test_synchronized_fused_batch_norm_fuses_without_several_replicas():
    # Several replicas (Keras's all-reducing code) run in tests/mirrored_check.py.
    fused, plain = _norm_pair(synchronized=True)
    x = _norm_inputs()
    assert "FusedBatchNormV3" in _op_types(fused, x, True)  # one replica: nothing to all-reduce
    np.testing.assert_allclose(
        fused(x, training=True).numpy(), plain(x, training=True).numpy(), rtol=0, atol=1e-5
    )


def test_fused_batch_norm_config_round_trips_and_keeps_synchronized():
    from keras_seresnet.models.layers import BatchNormalization as FusedBatchNormalization

    layer = FusedBatchNormalization(momentum=0.8, epsilon=1e-3, synchronized=True, name="bn")
    config = layer.get_config()
    assert config["synchronized"] is True and config["momentum"] == 0.8
    again = FusedBatchNormalization.from_config(config)
    assert (again.synchronized, again.momentum, again.epsilon, again.name) == (
        True,
        0.8,
        1e-3,
        "bn",
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is FusedBatchNormalization


def test_batch_norm_option_chooses_the_layer_class_and_keeps_counts():
    from keras_seresnet.models.layers import BatchNormalization as FusedBatchNormalization

    tiny = dict(TINY_MODEL)
    fused = build_seresnet(**tiny)
    plain = build_seresnet(batch_norm="keras", **tiny)
    norms = [
        type(layer) for layer in fused.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and set(norms) == {FusedBatchNormalization}
    assert {
        type(layer) for layer in plain.layers if isinstance(layer, keras.layers.BatchNormalization)
    } == {keras.layers.BatchNormalization}
    assert fused.count_params() == plain.count_params()
    synced = build_seresnet(synchronized=True, **tiny)
    assert all(
        layer.synchronized
        for layer in synced.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    with pytest.raises(ValueError, match="Received: batch_norm='cudnn'"):
        build_seresnet(batch_norm="cudnn", **tiny)
    with pytest.raises(ValueError, match="Received: synchronized='yes'"):
        build_seresnet(synchronized="yes", **tiny)


def test_speedups_off_builds_keras_batch_norm(monkeypatch):
    from keras_seresnet.runtime import SPEEDUPS_ENV

    monkeypatch.setenv(SPEEDUPS_ENV, "0")
    model = build_seresnet(**TINY_MODEL)
    assert {
        type(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    } == {keras.layers.BatchNormalization}


def test_fused_model_trains_like_the_keras_model():
    """Same weights, same batch: two SGD steps give the same losses and weights to float32 rounding."""
    tiny = dict(TINY_MODEL, dropout=0.0)
    keras.utils.set_random_seed(0)
    fused = build_seresnet(**tiny)
    plain = build_seresnet(batch_norm="keras", **tiny)
    plain.set_weights(fused.get_weights())
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    losses = []
    for model in (fused, plain):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
        losses.append([float(model.train_on_batch(x, y)) for _ in range(2)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(fused.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.path)


def test_weights_files_interchange_between_fused_and_keras_batch_norm(tmp_path):
    # Weights files key layers by class name; the fused layer keeps Keras's,
    # so checkpoints written with Keras's BatchNormalization still load.
    tiny = dict(TINY_MODEL)
    plain = build_seresnet(batch_norm="keras", **tiny)
    for variable in plain.non_trainable_weights:
        variable.assign(np.random.default_rng(0).uniform(0.5, 1.5, variable.shape))
    plain.save_weights(tmp_path / "plain.weights.h5")
    plain.save(tmp_path / "plain.keras")
    for source in ("plain.weights.h5", "plain.keras"):
        fused = build_seresnet(**tiny)
        fused.load_weights(tmp_path / source)
        for a, b in zip(fused.weights, plain.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_numpy_integers_and_lists_build_the_same_model():
    model = build_seresnet(
        num_classes=np.int64(10),
        widths=[np.int64(8), 16],
        blocks=[1, 1],
        se_stages=[2],
        se_reduction=np.int64(4),
    )
    assert model.output_shape == (None, 10)
    assert model.count_params() == build_seresnet(**TINY_MODEL, se_reduction=4).count_params()


@pytest.mark.parametrize("max_params", [0, "big", 2.5e6])
def test_a_bad_max_params_is_refused_before_building(max_params):
    with pytest.raises(
        ConfigError,
        match=r"^Config field `max_params` must be a positive integer "
        rf"or None. Received: max_params={max_params!r}$",
    ):
        build_seresnet(**TINY_MODEL, max_params=max_params)


def test_a_widths_that_is_not_a_sequence_is_a_config_error():
    with pytest.raises(
        ValueError,
        match=r"`widths` must be a tuple \(or list\) of integers. "
        r"Received: widths=32",
    ):
        build_seresnet(widths=32)


@pytest.mark.parametrize("config", [{"num_classes": 10}, None])
def test_build_from_config_needs_a_train_config(config):
    with pytest.raises(
        TypeError,
        match=r"^Argument `config` must be a TrainConfig \(for a dict "
        r"use `TrainConfig.from_dict`\). Received: config of type ",
    ):
        build_from_config(config)


def test_numpy_arrays_are_accepted_as_sequences():
    model = build_seresnet(
        widths=np.array([8, 16]),
        blocks=np.array([1, 1]),
        se_stages=np.array([2]),
        mean=np.array([0.5, 0.5, 0.5]),
    )
    assert model.count_params() == build_seresnet(**TINY_MODEL, mean=(0.5, 0.5, 0.5)).count_params()


# --- weights ---


def test_a_weights_file_loads_into_a_model_of_the_same_architecture(tmp_path):
    source = build_seresnet(**TINY_MODEL)
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    for batch_norm in ("fused", "keras"):
        loaded = build_seresnet(**TINY_MODEL, weights=path, batch_norm=batch_norm)
        for expected, actual in zip(source.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(actual, expected)


def test_a_weights_file_of_another_architecture_is_one_short_error(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    build_seresnet(**TINY_MODEL).save_weights(path)
    with pytest.raises(
        ValueError, match=r"does not fit this model: A total of \d+ objects"
    ) as info:
        build_seresnet(**dict(TINY_MODEL, widths=(8, 32)), weights=path)
    assert len(str(info.value)) < 600  # not Keras's dump of the variable's values


@pytest.mark.parametrize(
    "weights, error, message",
    [
        (
            "imagenet",
            ValueError,
            r"`weights` must be None, a pretrained name \(.*\) or the path of a "
            r"`.weights.h5` file. Received: weights='imagenet'",
        ),
        (3, ValueError, r"Received: weights=3"),
        ("missing.weights.h5", FileNotFoundError, r"No such weights file: missing.weights.h5"),
    ],
)
def test_bad_weights_are_refused_before_building(weights, error, message):
    with pytest.raises(error, match=message):
        build_seresnet(**TINY_MODEL, weights=weights)


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    model = build_seresnet(**TINY_MODEL, zero_init_residual=True)
    default = build_seresnet(**TINY_MODEL)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            expected = 0.0 if layer.name.endswith("_bn2") else 1.0
            np.testing.assert_array_equal(layer.gamma.numpy(), expected, err_msg=layer.name)
    np.testing.assert_array_equal(default.get_layer("stage1_block1_bn2").gamma.numpy(), 1.0)
    # A block whose shortcut is the identity passes its input on unchanged: the
    # residual branch adds zeros before the final ReLU of an already ReLU'd input.
    block_in = keras.Model(model.input, model.get_layer("stem_relu").output)
    block_out = keras.Model(model.input, model.get_layer("stage1_block1_out").output)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(block_out(x, training=True), block_in(x, training=True), atol=1e-6)


def test_build_from_config_passes_the_model_fields_and_overrides():
    config = TrainConfig(**TINY_MODEL, dropout=0.5, epochs=3)
    model = build_from_config(config, name="custom")
    assert model.name == "custom" and model.get_layer("head_dropout").rate == 0.5
    assert model.count_params() == build_seresnet(**TINY_MODEL).count_params()
