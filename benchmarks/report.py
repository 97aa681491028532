"""What the command line prints after the benchmarks: ratios, targets, the speed tables, FLOP rates.

Every function takes `rates`, `{result name: images per second}`, and
leaves out what was not measured.
"""

from benchmarks import flops, machine
from benchmarks.reference import FORMS, result_names
from benchmarks.timing import cpus
from keras_seresnet.config import TrainConfig

FORM_LABELS = {
    "notebook": "PyTorch as the notebook wrote it (NCHW float32)",
    "channels-last": "PyTorch, channels_last",
    "bf16": "PyTorch, autocast bfloat16",
    "bf16-channels-last": "PyTorch, autocast bfloat16 + channels_last",
}
FORM_COLUMNS = {
    "notebook": "notebook",
    "channels-last": "channels_last",
    "bf16": "autocast bf16",
    "bf16-channels-last": "bf16 + channels_last",
}


def ratio_lines(rates, ratios):
    """ "a / b = 1.23x (meaning)" for each `(a, b, meaning)` of `ratios` with both measured."""
    return [
        f"{a} / {b} = {rates[a] / rates[b]:.2f}x ({meaning})"
        for a, b, meaning in ratios
        if a in rates and b in rates
    ]


def _table(title, rows, rates, kind):
    """A Markdown table: each measured row's img/s and its ratio to each measured PyTorch form."""
    anchors = [
        (form, result_names(form)[kind]) for form in FORMS if result_names(form)[kind] in rates
    ]
    lines = [
        f"| {title} | img/s | " + " | ".join(f"/ {FORM_COLUMNS[f]}" for f, _ in anchors) + " |",
        "| --- | ---: |" + " ---: |" * len(anchors),
    ]
    for label, name in rows:
        if name in rates:
            ratios = " | ".join(f"{rates[name] / rates[anchor]:.2f}x" for _, anchor in anchors)
            lines.append(f"| {label} | {rates[name]:,.1f} | {ratios} |")
    return lines


def _target(rates, a, b, label, target, bf16_units=True):
    if a not in rates or b not in rates:
        return None
    ratio = rates[a] / rates[b]
    if not bf16_units:
        verdict = "not measurable here: this CPU has no bfloat16 units, bfloat16 is emulated"
    else:
        verdict = "met" if ratio >= target else "not met"
    return f"- {label}: {ratio:.2f}x (target >= {target}x: {verdict})"


def speed_report(rates, config, machine_info, low_precision):
    """The `speed` command's report: machine, training and inference tables, targets, advice.

    Args:
        rates: images per second by result name.
        config: the `TrainConfig` benchmarked (batch size, model).
        machine_info: `(cpu model, features or None, where they came from)`.
        low_precision: the dtype policy compared with float32 ("mixed_bfloat16").

    Returns:
        The report, a multi-line string (Markdown tables).
    """
    import keras
    import tensorflow as tf

    model_name, features, source = machine_info
    units = bool(set(features or ()) & set(machine.BF16_FEATURES))
    versions = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    try:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        versions += ", no torch"
    train_rows = [(label, result_names(form)[0]) for form, label in FORM_LABELS.items()] + [
        ("keras_seresnet, float32", "train-step"),
        (f"keras_seresnet, {low_precision}", f"train-step-{low_precision}"),
        ("keras_seresnet `train()` end to end, float32", "fit"),
    ]
    infer_rows = [(label, result_names(form)[1]) for form, label in FORM_LABELS.items()] + [
        ("keras_seresnet, float32", "inference"),
        (f"keras_seresnet, {low_precision}", f"inference-{low_precision}"),
    ]
    low_step, low_infer = f"train-step-{low_precision}", f"inference-{low_precision}"
    bf16 = low_precision == "mixed_bfloat16"
    targets = [
        _target(
            rates,
            "train-step",
            "reference-train-step-channels-last",
            "training step, float32 / PyTorch channels_last",
            1.0,
        ),
        _target(
            rates,
            "train-step",
            "reference-train-step",
            "training step, float32 / PyTorch notebook",
            1.3,
        ),
        _target(
            rates,
            low_step,
            "train-step",
            f"training step, {low_precision} / float32",
            2.0,
            units or not bf16,
        ),
        _target(
            rates,
            low_step,
            "reference-train-step-bf16-channels-last",
            f"training step, {low_precision} / PyTorch bf16 + channels_last",
            1.0,
            units or not bf16,
        ),
        _target(
            rates,
            "fit",
            "reference-train-step",
            "train() end to end / PyTorch notebook's bare step",
            1.3,
        ),
        _target(
            rates, "inference", "reference-inference", "inference, float32 / PyTorch notebook", 1.3
        ),
    ]
    measured = {low_step, "train-step"} <= set(rates)
    speedup = rates[low_step] / rates["train-step"] if measured else None
    # The advice is about bfloat16: a mixed_float16 figure does not decide it.
    precision, reason = machine.recommended_precision(features, speedup if bf16 else None)
    lines = [
        f"Machine: {model_name}, {cpus()} cores; {machine.describe(features)} ({source})",
        f"Software: {versions}",
        f"Each figure: median of the timed runs, all measured side by side in this one process; "
        f"training batch {config.batch_size}.",
        "",
        *_table("training step", train_rows, rates, 0),
        "",
        *_table("inference", infer_rows, rates, 1),
        "",
        *[t for t in targets if t],
    ]
    if measured:
        inference = (
            f", inference {rates[low_infer] / rates['inference']:.2f}x"
            if {low_infer, "inference"} <= set(rates)
            else ""
        )
        lines.append(f"- {low_precision} / float32: training step {speedup:.2f}x{inference}")
    ceiling = convolution_line(rates, keras.DTypePolicy(low_precision).compute_dtype)
    if ceiling:
        lines.append(ceiling)
    recipe = TrainConfig()
    if (config.widths, config.blocks, config.use_se) != (
        recipe.widths,
        recipe.blocks,
        recipe.use_se,
    ):
        lines.append(
            "- Note: the PyTorch reference is always the recipe's model; this config's "
            "model differs, so the ratios to PyTorch compare different models."
        )
    lines += ["", f"Recommended CPU training precision: --mixed-precision {precision} ({reason})"]
    return "\n".join(lines)


def convolution_line(rates, dtype):
    """The machine's ceiling: TensorFlow's bare convolution in `dtype` against float32, or None.

    Reads the `conv-float32` and `conv-{dtype}` results of
    `flops.prepare_convolution` (at its default shape).
    """
    low, base = f"conv-{dtype}", "conv-float32"
    if low not in rates or base not in rates:
        return None
    per_example = flops.convolution_flops()
    return (
        f"- Ceiling of the machine: TensorFlow's own 3x3 convolution with both gradients "
        f"(128 channels, 16x16), {dtype} {rates[low] * per_example / 1e9:,.0f} GFLOP/s / "
        f"float32 {rates[base] * per_example / 1e9:,.0f} GFLOP/s = "
        f"{rates[low] / rates[base]:.2f}x; the convolutions hold nearly all of a step's "
        f"FLOPs, so a {dtype} step gains about this much (its element-wise work, moving "
        f"half the bytes, may gain a little more)"
    )


def flops_line(rates, config, matmul_size=2048):
    """FLOPs per image counted from the config's model, the machine's matmul rate, ours against it.

    Args:
        rates: images per second by result name.
        config: the `TrainConfig` whose model is counted.
        matmul_size: side of the float32 matrices of `flops.matmul_gflops`.
    """
    from keras_seresnet.models.seresnet import build_from_config

    model = build_from_config(config)
    forward, step = flops.forward_flops(model), flops.train_flops(model)
    line = (
        f"FLOPs per image (counted from the model's layers): forward {forward / 1e9:.3f} G, "
        f"training step {step / 1e9:.3f} G; float32 {matmul_size}x{matmul_size} matrix "
        f"multiply {flops.matmul_gflops(matmul_size):.0f} GFLOP/s"
    )
    reached = [
        f"{name} {rates[name] * per_image / 1e9:.0f} GFLOP/s"
        for name, per_image in (("train-step", step), ("fit", step), ("inference", forward))
        if name in rates
    ]
    return line + ("; reached: " + ", ".join(reached) if reached else "")
