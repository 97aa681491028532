import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seresnet import PARAMETER_BUDGET, TrainConfig, build_from_config, build_seresnet


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
    norms = [l for l in default_model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == 1 + 8 * 2 + 3
    assert {(l.momentum, l.epsilon) for l in norms} == {(0.9, 1e-5)}


def test_stride_two_convolutions_pad_symmetrically(default_model):
    padded = [l for l in default_model.layers if isinstance(l, keras.layers.ZeroPadding2D)]
    assert sorted(l.name for l in padded) == [
        "stage2_block1_conv1_pad", "stage3_block1_conv1_pad", "stage4_block1_conv1_pad"
    ]
    assert all(l.padding == ((1, 1), (1, 1)) for l in padded)


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
    assert [l.name for l in model.layers] == [l.name for l in default_model.layers]
    assert build_from_config(TrainConfig(use_se=False)).count_params() == 2_802_442


@pytest.mark.slow
def test_keras_file_round_trip_in_new_process(tmp_path, default_model):
    path = tmp_path / "model.keras"
    default_model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = default_model.predict(x, verbose=0)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        model = keras.models.load_model({str(path)!r})
        np.save({str(tmp_path / 'y.npy')!r}, model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))
        """
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)
