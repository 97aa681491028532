"""Trajectory parity: 56 training steps of the package and of the PyTorch recipe agree.

The reference model (reference/torch_seresnet.py, widths 8-16-32-32) is
imported into `build_from_config` with `load_torch_weights`. Our pipeline
(`make_train_dataset`: colour jitter, crop, flip, cutout, mixup with one
lambda and one partner order per batch, carried by the mixed one-hot
targets) makes 4 epochs of 14 batches of 8 once, each epoch with its own
alpha. The Keras side trains on that pipeline the way `keras_seresnet.train`
does (`compile_model`, one `fit` per epoch on one dataset whose epoch
variable is set before the fit, the learning rate and mixup alpha set by the
package's callbacks at each epoch begin); PyTorch runs `train_reference` (the
notebook's loop: per-epoch learning rate, `F.cross_entropy(logits, targets,
label_smoothing=0.08)` on the soft targets, `torch.optim.SGD(momentum=0.9,
weight_decay=5e-4)`) on the batches made beforehand. Dropout is off. The
schedule is the recipe's scaled to 4 epochs with 1 warmup epoch: learning
rates 0.1, 0.1, 0.07525, 0.02575 and alphas 0.4, 0.3, 0.2, 0.1.

So Keras only matches if each epoch's alpha reaches that epoch's first
batches (not if the pipeline made them before the callback ran) and each
epoch's learning rate its first step.

float64 on both sides. Each of the 56 steps, done by PyTorch from the state
Keras had before it, gives Keras's loss (to 1e-12), update and momentum
buffers (to 1.4e-8 of the step's largest update, measured: float64 rounding,
amplified where BatchNorm's backward cancels on 8-image batches; estimated,
a decoupled weight decay would move updates by about 1e-4 of their size, a
learning rate or alpha of the wrong epoch by far more) and BatchNorm
statistics. The moving variance differs
by construction: PyTorch averages the unbiased batch variance (times
n / (n - 1), n = batch * height * width), Keras 3 the biased one; one step of
each recursion from the same v0 gives `keras = 0.9 v0 + (torch - 0.9 v0)
(n - 1) / n`, which the test asserts. Run freely, without resynchronising,
the two trajectories agree to 3.7e-9 in the first epoch, then part: at
learning rate 0.1 with 8 images per step a rounding difference grows about
2.5x per step (running losses 4.6e-4, 2.5e-3, 6.2e-3 apart in epochs 2-4).

float32 (what users run; Keras then takes the fused BatchNorm kernel of
`keras_seresnet.models.layers.BatchNormalization`), the same free-running 56 steps,
measured once with `float32_drift()`: per step from synchronised states the
updates are up to 1.3e-2 of the step's largest update apart (worst of the 56
steps; from the same states PyTorch float32 was up to 1.1e-3 from PyTorch
float64 and Keras float32 up to 1.3e-2: a pre-activation within float32
rounding of zero switches its ReLU on one side only, and at 8 images per
step one such unit moves a small tensor's update visibly). Free-running, the
running losses are 1.7e-3 apart in epoch 1 and 2.6e-2, 3.9e-2, 5.1e-2 in
epochs 2-4, and the final weights differ by up to 0.46 of the largest weight:
float32 runs decorrelate, as float64 ones do more slowly, so float32 parity
is statistical (benchmarks/parity.py), not a bound for a test.
"""

import copy

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_seresnet import load_torch_weights  # noqa: E402
from keras_seresnet.config import TrainConfig  # noqa: E402
from keras_seresnet.data import pipeline  # noqa: E402
from keras_seresnet.interop.torch_import import torch_prefix  # noqa: E402
from keras_seresnet.models.seresnet import build_from_config  # noqa: E402
from keras_seresnet.schedules import learning_rate_at, mixup_alpha_at  # noqa: E402
from keras_seresnet.training.callbacks import MixupAlphaDecay, WarmupCosineLearningRate  # noqa: E402
from keras_seresnet.training.loop import compile_model  # noqa: E402
from reference.torch_seresnet import ReferenceSEResNet, train_reference  # noqa: E402

pytestmark = pytest.mark.slow  # one float64 run of 56 steps, about a minute on 2 cores

IMAGES = 112  # 14 steps of 8 per epoch, 56 in all
CONFIG = TrainConfig(
    widths=(8, 16, 32, 32), batch_size=8, epochs=4, warmup_epochs=1, dropout=0.0, seed=5
)


class _Precision:
    """Builds Keras models (policy) and losses and metrics (floatx) in `dtype` inside the block."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        self.previous = keras.config.dtype_policy(), keras.config.floatx()
        keras.config.set_dtype_policy(self.dtype)
        keras.config.set_floatx(self.dtype)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous[0])
        keras.config.set_floatx(self.previous[1])


def make_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8)
    y = np.arange(IMAGES) % 10
    return x, y


def make_reference():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return ReferenceSEResNet(widths=CONFIG.widths, dropout=0.0)


class _StepRecorder(keras.callbacks.Callback):
    """Keeps Keras's per-step logs, the learning rate of each epoch and the state after each step.

    A state is `(weights, momentum buffers)`, float64 copies in the order of
    `model.weights` and `model.trainable_variables`.
    """

    def __init__(self):
        super().__init__()
        self.running_losses, self.learning_rates, self.states = [], [], []

    def state(self):
        return (
            [np.asarray(w.numpy(), "float64") for w in self.model.weights],
            [np.asarray(m.numpy(), "float64") for m in self.model.optimizer.momentums],
        )

    def on_train_begin(self, logs=None):
        if not self.states:
            self.states.append(self.state())

    def on_epoch_begin(self, epoch, logs=None):
        self.running_losses.append([])

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.learning_rates.append(float(np.asarray(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self.running_losses[-1].append(float(logs["loss"]))
        self.states.append(self.state())


def run_trajectories(dtype):
    """Trains both sides in `dtype`; returns what the tests compare."""
    x, y = make_data()
    reference = make_reference()
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    with _Precision(dtype):
        model = compile_model(load_torch_weights(build_from_config(CONFIG), state), CONFIG)
        model.optimizer.build(model.trainable_variables)  # as the loop does
        mirror = build_from_config(CONFIG)
        normalize = keras.Model(model.input, model.get_layer("normalize").output)
    initial = [np.asarray(w.numpy(), "float64") for w in model.weights]

    # The loop's pipeline: one dataset for the run, its epoch and alpha variables.
    alpha = pipeline.make_mixup_alpha(CONFIG.mixup_alpha)
    epoch_variable = pipeline.make_epoch_variable(0)
    dataset = pipeline.make_train_dataset(x, y, CONFIG, alpha, epoch=epoch_variable)
    batches = []
    for epoch in range(CONFIG.epochs):
        epoch_variable.assign(epoch)
        alpha.assign(mixup_alpha_at(epoch, CONFIG))
        batches.append(list(dataset.as_numpy_iterator()))
    alpha.assign(CONFIG.mixup_alpha)  # as the loop creates it

    # Keras: as keras_seresnet.training.loop._train drives fit.
    recorder = _StepRecorder()
    callbacks = keras.callbacks.CallbackList(
        [
            WarmupCosineLearningRate.from_train_config(CONFIG),
            MixupAlphaDecay.from_train_config(CONFIG, alpha),
            recorder,
        ],
        add_history=True,
        model=model,
        verbose=0,
        epochs=CONFIG.epochs,
        steps=int(dataset.cardinality()),
    )
    for epoch in range(CONFIG.epochs):
        epoch_variable.assign(epoch)
        history = model.fit(
            dataset,
            initial_epoch=epoch,
            epochs=epoch + 1,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )

    # PyTorch: the notebook's loop on the same batches. Its input is exactly
    # the tensor Keras's first convolution sees (Keras's Normalization keeps
    # its constants in float32).
    def torch_batches(epoch):
        for images, targets in batches[epoch]:
            normalised = np.asarray(normalize(images)).transpose(0, 3, 1, 2)
            yield (
                torch.from_numpy(normalised.copy()).to(torch_dtype),
                torch.from_numpy(targets.copy()).to(torch_dtype),
            )

    torch_model = copy.deepcopy(reference).to(torch_dtype)
    torch_losses, _ = train_reference(
        torch_model,
        ((lr, torch_batches(e)) for e, lr in enumerate(recorder.learning_rates)),
        momentum=CONFIG.momentum,
        weight_decay=CONFIG.weight_decay,
        label_smoothing=CONFIG.label_smoothing,
    )
    torch_state = {k: v.detach().clone() for k, v in torch_model.state_dict().items()}
    load_torch_weights(mirror, torch_state)
    torch_weights = [np.asarray(w.numpy(), "float64") for w in mirror.weights]
    return {
        "model": model,
        "normalize": normalize,
        "torch_dtype": torch_dtype,
        "reference": reference,
        "batches": batches,
        "history": history,
        "recorder": recorder,
        "initial": initial,
        "keras_weights": [np.asarray(w.numpy(), "float64") for w in model.weights],
        "torch_weights": torch_weights,
        "torch_losses": torch_losses,
        "steps": sum(len(epoch) for epoch in batches),
    }


_TORCH_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def keras_state_as_torch(model, state):
    """A recorded Keras state as PyTorch tensors: `(state_dict, momentum buffers)` by reference key."""
    weights, momentums = state
    momentum_of = dict(zip([v.path for v in model.trainable_variables], momentums))
    tensors, buffers = {}, {}
    for variable, value in zip(model.weights, weights):
        layer_name, short = variable.path.split("/")
        prefix = torch_prefix(layer_name)
        if prefix is None:
            continue
        key = f"{prefix}.{_TORCH_NAMES[short]}"

        def layout(array, short=short):
            if short == "kernel":  # Keras [kh, kw, in, out] / [in, out] -> PyTorch [out, in, ...]
                array = array.transpose(3, 2, 0, 1) if array.ndim == 4 else array.T
            return torch.from_numpy(array.copy())

        tensors[key] = layout(value)
        if variable.path in momentum_of:
            buffers[key] = layout(momentum_of[variable.path])
    return tensors, buffers


def synced_steps(run):
    """Each of the run's steps done by PyTorch from Keras's state before it.

    Yields `(step, keras_loss, torch_loss, keras_after, torch_after,
    torch_buffers, keras_buffers, before)`: the torch tensors in the
    reference's layout. Free of the trajectories' sensitivity to rounding:
    every step starts from the same numbers on both sides.
    """
    model, recorder = run["model"], run["recorder"]
    keras_losses = np.concatenate(
        [
            np.diff(np.concatenate([[0.0], np.asarray(r) * np.arange(1, len(r) + 1)]))
            for r in recorder.running_losses
        ]
    )
    steps = [(epoch, batch) for epoch, batches in enumerate(run["batches"]) for batch in batches]
    for step, (epoch, (images, targets)) in enumerate(steps):
        before, before_buffers = keras_state_as_torch(model, recorder.states[step])
        after, after_buffers = keras_state_as_torch(model, recorder.states[step + 1])
        torch_model = copy.deepcopy(run["reference"]).to(run["torch_dtype"])
        missing, unexpected = torch_model.load_state_dict(before, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
        optimizer = torch.optim.SGD(
            torch_model.parameters(),
            lr=0.0,
            momentum=CONFIG.momentum,
            weight_decay=CONFIG.weight_decay,
        )
        if step:  # PyTorch starts its buffer at the first gradient; Keras's zeros give the same
            for name, parameter in torch_model.named_parameters():
                optimizer.state[parameter]["momentum_buffer"] = before_buffers[name].clone()
        normalised = np.asarray(run["normalize"](images)).transpose(0, 3, 1, 2).copy()
        batch = (
            torch.from_numpy(normalised).to(run["torch_dtype"]),
            torch.from_numpy(targets.copy()).to(run["torch_dtype"]),
        )
        losses, optimizer = train_reference(
            torch_model,
            [(run["recorder"].learning_rates[epoch], [batch])],
            optimizer=optimizer,
            momentum=CONFIG.momentum,
            weight_decay=CONFIG.weight_decay,
            label_smoothing=CONFIG.label_smoothing,
        )
        torch_after = {k: v.detach().double() for k, v in torch_model.state_dict().items()}
        torch_buffers = {
            name: optimizer.state[p]["momentum_buffer"].double()
            for name, p in torch_model.named_parameters()
        }
        yield (
            step,
            keras_losses[step],
            losses[0][0],
            after,
            torch_after,
            torch_buffers,
            after_buffers,
            before,
        )


def _running_means(losses):
    return [np.cumsum(epoch) / np.arange(1, len(epoch) + 1) for epoch in losses]


def _relative(actual, expected):
    return np.abs(actual - expected).max() / np.abs(expected).max()


def float32_drift():
    """The float32 figures of the module docstring (`python -c` it; not a test).

    Returns the worst per-step update error from synchronised states (as
    `test_float64_every_step_is_the_recipes_step` measures it), the running
    losses' largest relative difference per epoch of the free runs, and the
    free runs' final trainable weights apart (max difference over all
    tensors against the largest weight; the stem's bias left out: its exact
    gradient is 0 under the BatchNorm, so it moves by rounding alone).
    """
    run = run_trajectories("float32")
    update = max(
        _update_error(after, torch_after, before, list(torch_buffers))
        for _, _, _, after, torch_after, torch_buffers, _, before in synced_steps(run)
    )
    losses = [
        float(_relative(np.asarray(k), r))
        for k, r in zip(run["recorder"].running_losses, _running_means(run["torch_losses"]))
    ]
    model = run["model"]
    pairs = [
        (k, t)
        for w, k, t in zip(model.weights, run["keras_weights"], run["torch_weights"])
        if w.trainable and w.path != "stem_conv/bias"
    ]
    weights = max(np.abs(k - t).max() for k, t in pairs) / max(np.abs(t).max() for _, t in pairs)
    return {
        "steps": run["steps"],
        "synced_update_error": float(update),
        "free_running_loss_difference_per_epoch": losses,
        "free_running_weights": float(weights),
    }


@pytest.fixture(scope="module")
def float64_run():
    return run_trajectories("float64")


def test_the_batches_cover_epoch_boundaries_with_changing_alpha_and_learning_rate(float64_run):
    run = float64_run
    assert run["steps"] >= 50 and [len(epoch) for epoch in run["batches"]] == [14] * 4
    expected_lrs = [learning_rate_at(e, CONFIG) for e in range(CONFIG.epochs)]
    np.testing.assert_allclose(run["recorder"].learning_rates, expected_lrs, rtol=1e-7)
    assert len(set(np.round(expected_lrs, 6))) == 3
    # One History for the run (the loop's CallbackList): every epoch's alpha.
    alphas = run["history"].history["mixup_alpha"]
    assert alphas == [mixup_alpha_at(e, CONFIG) for e in range(CONFIG.epochs)]
    assert len(set(alphas)) == 4
    # The targets carry each batch's one lambda: a row's largest entry is
    # max(lambda, 1 - lambda), or 1 where the partner has the same label.
    for epoch in run["batches"]:
        mixed_batches = 0
        for _, targets in epoch:
            np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
            largest = targets.max(axis=1)
            mixed = largest[largest < 1.0 - 1e-6]
            if mixed.size:
                mixed_batches += 1
                assert np.ptp(mixed) < 1e-6 and mixed.min() >= 0.5 - 1e-6
        assert mixed_batches >= 7


def _update_error(after, torch_after, before, keys):
    """max |keras update - torch update| over `keys`, relative to the largest torch update."""
    scale = max(np.abs(torch_after[k].numpy() - before[k].numpy()).max() for k in keys)
    return max(np.abs(after[k].numpy() - torch_after[k].numpy()).max() for k in keys) / scale


def test_float64_every_step_is_the_recipes_step(float64_run):
    """All 56 steps, each from Keras's state before it: loss, update, momentum, statistics."""
    model = float64_run["model"]
    sizes = {
        torch_prefix(layer.name): CONFIG.batch_size * int(np.prod(layer.output.shape[1:3]))
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    worst = {"update": 0.0, "buffer": 0.0}
    for (
        step,
        keras_loss,
        torch_loss,
        after,
        torch_after,
        torch_buffers,
        keras_buffers,
        before,
    ) in synced_steps(float64_run):
        assert abs(keras_loss - torch_loss) < 1e-12 * torch_loss, step
        parameters = list(torch_buffers)
        # Worst element of any tensor against the step's largest update
        # (per tensor, a gradient that nearly cancels, such as a BatchNorm
        # beta's, shows float64 rounding at up to 2.4e-8 of its own size).
        worst["update"] = max(
            worst["update"], _update_error(after, torch_after, before, parameters)
        )
        buffer_scale = max(np.abs(b.numpy()).max() for b in torch_buffers.values())
        worst["buffer"] = max(
            worst["buffer"],
            max(
                np.abs(keras_buffers[name].numpy() - torch_buffers[name].numpy()).max()
                for name in parameters
            )
            / buffer_scale,
        )
        for prefix, n in sizes.items():
            mean, variance = f"{prefix}.running_mean", f"{prefix}.running_var"
            assert _relative(after[mean].numpy(), torch_after[mean].numpy()) < 1e-12, (step, mean)
            # One step of each recursion from the same v0: PyTorch adds the
            # unbiased batch variance, Keras the biased one.
            v0, v1 = before[variance].numpy(), torch_after[variance].numpy()
            expected = CONFIG.bn_momentum * v0 + (v1 - CONFIG.bn_momentum * v0) * (n - 1) / n
            assert _relative(after[variance].numpy(), expected) < 1e-12, (step, variance)
    print(f"worst over the steps: {worst}")
    assert step + 1 == float64_run["steps"] == 56
    assert worst["update"] < 1e-7 and worst["buffer"] < 1e-7


def test_float64_free_running_losses_agree_then_part_by_rounding(float64_run):
    """The whole run on each side, no resynchronising: equal in epoch 1, then apart by rounding.

    At the recipe's learning rate of 0.1 with 8 images per step the
    trajectories are sensitive to rounding: a float64-level difference grows
    by about 2.5x per step (measured: running losses agree to 3.7e-9 in the
    first epoch, 4.6e-4, 2.5e-3 and 6.2e-3 in the next three). Every step
    being the same step is `test_float64_every_step_is_the_recipes_step`;
    this test bounds the drift, which a wrong learning rate, alpha or target
    at an epoch boundary would exceed at once.
    """
    keras_running = float64_run["recorder"].running_losses
    torch_running = _running_means(float64_run["torch_losses"])
    assert [len(epoch) for epoch in keras_running] == [14] * 4
    np.testing.assert_allclose(keras_running[0], torch_running[0], rtol=1e-7)
    for keras_epoch, torch_epoch in zip(keras_running[1:], torch_running[1:]):
        np.testing.assert_allclose(keras_epoch, torch_epoch, rtol=3e-2)
    assert abs(torch_running[-1][-1] - torch_running[0][0]) > 1e-2  # it trained
