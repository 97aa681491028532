"""The reference PyTorch notebook's model, timed in the four forms a PyTorch user would pick.

`reference.torch_seresnet` (the notebook's model and training step) on one
synthetic batch held in memory, in each of `FORMS`:

- "notebook": as the notebook wrote it, NCHW float32;
- "channels-last": model and batch in `torch.channels_last` memory format;
- "bf16": the forward pass under `torch.autocast("cpu", torch.bfloat16)`
  (the loss, the backward pass and the update outside it, float32 weights);
- "bf16-channels-last": both.

Each form times (1) the training step at the config's batch size (forward in
train mode, label-smoothed cross-entropy on mixed targets, backward, SGD with
momentum and coupled weight decay), the reference's augmentation and data
loading left out, so the figure is an upper bound of the notebook's full
training throughput; (2) inference in eval mode under `torch.inference_mode`.
Every form starts from the same seeded weights; a form's training step and
its inference share one model. Needs PyTorch.
"""

from collections.abc import Sequence

import torch
from torch import nn

from benchmarks.timing import (
    Prepared,
    check_positive_int,
    cpus,
    measure,
    mixed_targets,
    synthetic_cifar,
)
from keras_seresnet.config import TrainConfig
from reference.torch_seresnet import ReferenceSEResNet, make_training_step, normalise

# form -> (channels_last, autocast bfloat16)
FORMS = {
    "notebook": (False, False),
    "channels-last": (True, False),
    "bf16": (False, True),
    "bf16-channels-last": (True, True),
}


class Autocast(nn.Module):
    """Runs `model`'s forward pass under `torch.autocast("cpu", torch.bfloat16)`; float32 logits out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def result_names(form):
    """The names of a form's two `Result`s: training step and inference."""
    suffix = "" if form == "notebook" else "-" + form
    return f"reference-train-step{suffix}", f"reference-inference{suffix}"


def _model(config, channels_last, autocast):
    torch.manual_seed(config.seed)
    model = ReferenceSEResNet(use_se=config.use_se, dropout=config.dropout)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Autocast(model) if autocast else model


def _batch(images, channels_last):
    x = normalise(images)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def prepare_reference(
    config: TrainConfig | None = None,
    *,
    forms: Sequence[str] = tuple(FORMS),
    steps=8,
    batch_size=256,
    threads=None,
    progress=None,
) -> list:
    """The reference's training step and inference in each of `forms`, warmed up, ready to time.

    Args:
        config: batch size, optimizer and seed. Default `TrainConfig()`.
        forms: names among `FORMS`, in this order. Default all four.
        steps: steps (or inference calls) per timed run, after 2 warm-up ones.
        batch_size: inference batch. Default 256.
        threads: `torch.set_num_threads`; default the cores this process may use.
        progress: callable for progress lines, or None.

    Returns:
        Two `Prepared` per form, named as `result_names(form)` says
        ("reference-train-step", "reference-inference" for "notebook").

    Raises:
        ValueError: an unknown form, or a non-positive count.
    """
    unknown = [form for form in forms if form not in FORMS]
    if unknown or not forms:
        raise ValueError(
            f"Argument `forms` must name one or more of {', '.join(FORMS)}. "
            f"Received: forms={list(forms)!r}"
        )
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    config = config or TrainConfig()
    threads = threads or cpus()
    torch.set_num_threads(threads)
    images, labels = synthetic_cifar(config.batch_size, config.seed, config.num_classes)
    targets = torch.from_numpy(mixed_targets(labels, config.num_classes))
    eval_images = synthetic_cifar(batch_size, config.seed)[0]
    details = {"torch": torch.__version__, "threads": threads, "cpus": cpus()}
    prepared = []
    for form in forms:
        channels_last, autocast = FORMS[form]
        train_name, infer_name = result_names(form)
        if progress:
            progress(
                f"{train_name}, {infer_name}: PyTorch, channels_last={channels_last}, "
                f"autocast bfloat16={autocast}: warm-up"
            )
        model = _model(config, channels_last, autocast)
        form_details = {"form": form, "steps": steps, **details}
        prepared += [
            _prepare_step(
                model,
                config,
                _batch(images, channels_last),
                targets,
                steps,
                train_name,
                form_details,
            ),
            _prepare_inference(
                model, _batch(eval_images, channels_last), steps, infer_name, form_details
            ),
        ]
    return prepared


def _prepare_step(model, config, x, targets, steps, name, details):
    step = make_training_step(
        model,
        lr=config.base_lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing,
    )

    def run(n=steps):
        for _ in range(n):
            step(x, targets)  # in train mode: the step sets it
        return n * config.batch_size

    run(2)
    return Prepared(name, run, {"batch_size": config.batch_size, **details})


def _prepare_inference(model, x, steps, name, details):
    def run(n=steps):
        model.eval()  # the model's training step, timed in turn with this, sets train mode
        with torch.inference_mode():
            for _ in range(n):
                torch.softmax(model(x), dim=1)
        return n * x.shape[0]

    run(2)
    return Prepared(name, run, {"batch_size": x.shape[0], **details})


def reference_throughput(
    config: TrainConfig | None = None,
    *,
    forms: Sequence[str] = tuple(FORMS),
    steps=8,
    repeats=3,
    batch_size=256,
    threads=None,
    progress=None,
) -> list:
    """Images per second of the reference's training step and inference, in each of `forms`.

    Args:
        config, forms, steps, batch_size, threads, progress: as in `prepare_reference`.
        repeats: timed runs of each, in rounds (`measure`). Default 3.

    Returns:
        Two `Result`s per form, named as `result_names(form)` says.

    Raises:
        ValueError: an unknown form, or a non-positive count.
    """
    check_positive_int("repeats", repeats)
    prepared = prepare_reference(
        config, forms=forms, steps=steps, batch_size=batch_size, threads=threads, progress=progress
    )
    return measure(prepared, repeats, progress)
