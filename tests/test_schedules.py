import dataclasses
import math

import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.schedules import (
    decayed_mixup_alpha,
    default_warmup_epochs,
    hardly_decays,
    learning_rate_at,
    mixup_alpha_at,
    warmup_cosine_lr,
)


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


def reference_step_schedule(
    s, epochs, steps, warmup_epochs, base=0.1, floor=0.001, alpha=0.4, alpha_min=0.1
):
    """The step unit written out again: `s` of `epochs * steps`, the floor at the last step."""
    total, warmup = epochs * steps, warmup_epochs * steps
    if s < warmup:
        lr = base * (s + 1) / warmup
    else:
        lr = floor + 0.5 * (base - floor) * (
            1 + math.cos(math.pi * (s - warmup) / (total - 1 - warmup))
        )
    return lr, max(alpha_min, alpha * (1 - s / total))


@pytest.mark.parametrize(
    "epochs,steps,warmup", [(250, 391, None), (2, 40, None), (3, 7, 0), (1, 5, None)]
)
def test_step_unit_matches_the_reference_at_every_step(epochs, steps, warmup):
    config = TrainConfig(epochs=epochs, warmup_epochs=warmup, schedule_unit="step")
    resolved = config.resolved_warmup_epochs
    lrs, alphas = [], []
    for s in range(epochs * steps):
        lr, alpha = reference_step_schedule(s, epochs, steps, resolved)
        e, b = divmod(s, steps)
        lrs.append(learning_rate_at(e, config, b, steps))
        alphas.append(mixup_alpha_at(e, config, b, steps))
        assert lrs[-1] == pytest.approx(lr, rel=1e-12) and alphas[-1] == pytest.approx(
            alpha, rel=1e-12
        )
    assert lrs[-1] == pytest.approx(0.001)  # the floor at the last step
    if resolved:
        assert lrs[resolved * steps - 1] == pytest.approx(0.1)  # the peak at the end of the warmup
    # At each epoch's first step the alpha is the epoch unit's.
    per_epoch = dataclasses.replace(config, schedule_unit="epoch")
    assert alphas[::steps] == pytest.approx(
        [mixup_alpha_at(e, per_epoch) for e in range(epochs)], rel=1e-12
    )


def test_two_epoch_step_schedule_anneals_where_the_epoch_schedule_stays_at_the_peak():
    epoch_unit, step_unit = TrainConfig(epochs=2), TrainConfig(epochs=2, schedule_unit="step")
    assert [learning_rate_at(e, epoch_unit) for e in range(2)] == pytest.approx([0.1, 0.1])
    step_lrs = [learning_rate_at(e, step_unit, b, 10) for e in range(2) for b in range(10)]
    assert step_lrs[9] == pytest.approx(0.1) and step_lrs[-1] == pytest.approx(0.001)
    assert step_lrs[10] == pytest.approx(0.1)  # the cosine starts at the peak, as in the epoch unit
    assert all(a > b for a, b in zip(step_lrs[10:], step_lrs[11:]))


def test_a_short_epoch_unit_run_hardly_decays_and_a_step_unit_one_always_does():
    # The rule: the epoch unit's last epoch above half the peak learning rate.
    assert [e for e in range(1, 300) if hardly_decays(TrainConfig(epochs=e))] == [1, 2, 3]
    assert learning_rate_at(2, TrainConfig(epochs=3)) == pytest.approx(0.0505)  # just above 0.05
    assert not hardly_decays(TrainConfig(epochs=4)) and not hardly_decays(
        TrainConfig.preset("fast")
    )
    assert hardly_decays(TrainConfig(epochs=10, warmup_epochs=8))  # 0.1, 0.1, then 0.0505
    assert not any(hardly_decays(TrainConfig(epochs=e, schedule_unit="step")) for e in range(1, 5))


def test_the_default_warmup_is_the_configs():
    for epochs in range(1, 400):
        assert default_warmup_epochs(epochs) == TrainConfig(epochs=epochs).resolved_warmup_epochs
    assert warmup_cosine_lr(3, epochs=10, base_lr=0.1, min_lr=0.0) == pytest.approx(
        learning_rate_at(3, TrainConfig(epochs=10, min_lr=0.0)), rel=1e-15
    )
    assert (
        decayed_mixup_alpha(10, epochs=10, alpha=0.4, alpha_min=0.1) == 0.1
    )  # past the end: the floor


def test_the_schedules_of_0_1_0_stay_importable_from_training():
    from keras_seresnet import compat, schedules
    from keras_seresnet.training import schedules as moved

    names = compat.MOVED_NAMES[moved.__name__]
    assert {"UNITS", "learning_rate_at", "mixup_alpha_at", "warmup_cosine_lr"} <= set(names)
    assert all(getattr(moved, name) is getattr(schedules, name) for name in names)


def test_numpy_integers_are_epochs_and_infinite_rates_are_refused():
    import numpy as np

    from keras_seresnet.schedules import check_alpha_decay, check_warmup_cosine

    check_warmup_cosine(
        epochs=np.int64(10), base_lr=0.1, min_lr=0.0, warmup_epochs=np.int64(2), unit="epoch"
    )
    check_alpha_decay(epochs=np.int32(10), alpha=0.4, alpha_min=0.1, unit="step")
    with pytest.raises(
        ValueError,
        match=r"^Argument `base_lr` must be positive. "
        r"Received: base_lr=inf$",
    ):
        check_warmup_cosine(
            epochs=10, base_lr=math.inf, min_lr=0.0, warmup_epochs=None, unit="epoch"
        )
