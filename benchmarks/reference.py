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
Every form starts from the same seeded weights. Needs PyTorch.
"""

from typing import Optional, Sequence

import torch
from torch import nn

from benchmarks.timing import (
    Result,
    check_positive_int,
    cpus,
    mixed_targets,
    synthetic_cifar,
    time_runs,
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


def reference_throughput(config: Optional[TrainConfig] = None, *, forms: Sequence[str] = tuple(FORMS),
                         steps=8, repeats=3, batch_size=256, threads=None, progress=None) -> list:
    """Images per second of the reference's training step and inference, in each of `forms`.

    Args:
        config: batch size, optimizer and seed. Default `TrainConfig()`.
        forms: names among `FORMS`, timed in this order. Default all four.
        steps: steps (or inference calls) per timed run, after 2 warm-up ones.
        repeats: timed runs. Default 3.
        batch_size: inference batch. Default 256.
        threads: `torch.set_num_threads`; default the cores this process may use.
        progress: callable for progress lines, or None.

    Returns:
        Two `Result`s per form, named as `result_names(form)` says
        ("reference-train-step", "reference-inference" for "notebook").

    Raises:
        ValueError: an unknown form, or a non-positive count.
    """
    unknown = [form for form in forms if form not in FORMS]
    if unknown or not forms:
        raise ValueError(f"Argument `forms` must name one or more of {', '.join(FORMS)}. "
                         f"Received: forms={list(forms)!r}")
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    config = config or TrainConfig()
    threads = threads or cpus()
    torch.set_num_threads(threads)
    images, labels = synthetic_cifar(config.batch_size, config.seed, config.num_classes)
    targets = torch.from_numpy(mixed_targets(labels, config.num_classes))
    eval_images = synthetic_cifar(batch_size, config.seed)[0]
    details = {"torch": torch.__version__, "threads": threads, "cpus": cpus()}
    results = []
    for form in forms:
        channels_last, autocast = FORMS[form]
        train_name, infer_name = result_names(form)
        model = _model(config, channels_last, autocast)
        step = make_training_step(model, lr=config.base_lr, momentum=config.momentum,
                                  weight_decay=config.weight_decay,
                                  label_smoothing=config.label_smoothing)
        x = _batch(images, channels_last)

        def train_run(n):
            for _ in range(n):
                step(x, targets)
            return n * config.batch_size

        if progress:
            progress(f"{train_name}: PyTorch, channels_last={channels_last}, "
                     f"autocast bfloat16={autocast}")
        train_run(2)
        train_rates = time_runs(lambda: train_run(steps), repeats, progress, "step")
        model.eval()
        x_eval = _batch(eval_images, channels_last)

        def infer_run(n):
            with torch.inference_mode():
                for _ in range(n):
                    torch.softmax(model(x_eval), dim=1)
            return n * batch_size

        infer_run(2)
        infer_rates = time_runs(lambda: infer_run(steps), repeats, progress, "inference")
        form_details = {"form": form, "steps": steps, **details}
        results += [
            Result.from_runs(train_name, train_rates,
                             {"batch_size": config.batch_size, **form_details}),
            Result.from_runs(infer_name, infer_rates, {"batch_size": batch_size, **form_details}),
        ]
    return results
