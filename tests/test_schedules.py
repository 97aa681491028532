import math

import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.training.schedules import learning_rate_at, mixup_alpha_at


def spec_lr(e):
    # SPEC.md, "Optimisation", written out independently of the package.
    if e < 15:
        return 0.1 * (e + 1) / 15
    return 0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * (e - 15) / 235))


def spec_alpha(e):
    return max(0.1, 0.4 * (1 - e / 250))


def test_every_epoch_of_the_recipe_matches_spec():
    config = TrainConfig()
    for e in range(250):
        assert learning_rate_at(e, config) == pytest.approx(spec_lr(e), rel=1e-12)
        assert mixup_alpha_at(e, config) == pytest.approx(spec_alpha(e), rel=1e-12)


def test_short_run_scales_warmup_and_decay():
    config = TrainConfig(epochs=10)
    lrs = [learning_rate_at(e, config) for e in range(10)]
    assert lrs[0] == pytest.approx(0.1)  # one warmup epoch reaches the peak
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[-1] > 0.001
    assert mixup_alpha_at(0, config) == 0.4
    assert mixup_alpha_at(5, config) == pytest.approx(0.2)
    assert mixup_alpha_at(9, config) == pytest.approx(0.1)
