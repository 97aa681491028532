"""The report's ablation: Models 1-5, each the recipe with one change, from shared weights.

The arms (the report's ablation; docs/recipe.md), each a full `train()` run:

    1  full recipe         everything
    2  no mixup/cutout     mixup_cutout=False
    3  no color jitter     color_jitter=False
    4  + greyscale         grayscale=True
    5  no SE               use_se=False

Model 4. The report lists it as "without greyscale", yet its final recipe
(Model 1) has no greyscale either, because the report found greyscale
harmful. Repeating Model 1 would measure nothing, so arm 4 is the recipe
*plus* greyscale: the comparison with Model 1 shows what greyscale costs. It
is named "+ greyscale" in every table and chart so nobody reads it as the
report's wording.

Fairness. Every arm uses the same epoch budget, seeds and data; every arm
sets all four switches itself (the base config's switches are ignored). For
each seed one model of Model 1's architecture is initialised and saved, and
every arm of that seed starts from its weights: Model 5 has no SE layers, so
it takes every other layer's weights (all layers it has), the SE layers'
weights being the only ones not shared. The data order and augmentation of
epoch `e` depend on `(seed, e)` only, so the arms also see the same batches
(up to the augmentations an arm switches off).

Layout of the ablation folder:

    initial_weights/seed-S.keras   the starting model of every arm for seed S
    model1-full-recipe/seed-S/     each arm's run folder (`run_folder` layout)
    ...
    ablation.csv, ablation.md      the table (accuracy in percent)
    ablation.png                   the bar chart: test accuracy per model

Rerunning the same ablation resumes unfinished arms and skips finished ones.
"""

import contextlib
import csv
import dataclasses
import io
import logging
import os
import statistics

import keras

from keras_seresnet import files, plots
from keras_seresnet.config import MAX_SEED, digest
from keras_seresnet.data import cifar10 as data_module
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.training.loop import check_labels, resolve_config, train
from keras_seresnet.training.run_folder import save_model_atomic

_RECIPE = {"use_se": True, "mixup_cutout": True, "color_jitter": True, "grayscale": False}


@dataclasses.dataclass(frozen=True)
class AblationArm:
    """One model of the ablation.

    Attributes:
        model: the report's model number, 1-5.
        name: short label for tables and charts.
        change: what differs from the recipe, in words.
        switches: the values of `TrainConfig.use_se`, `mixup_cutout`,
            `color_jitter` and `grayscale` for this arm.
    """

    model: int
    name: str
    change: str
    switches: dict

    @property
    def slug(self):
        """Folder-safe name: `model2-no-mixup-cutout`."""
        safe = "".join(c if c.isalnum() else "-" for c in self.name.lower())
        return f"model{self.model}-" + "-".join(p for p in safe.split("-") if p)


ARMS = (
    AblationArm(1, "full recipe", "none (the final model)", dict(_RECIPE)),
    AblationArm(2, "no mixup/cutout", "mixup and cutout off", dict(_RECIPE, mixup_cutout=False)),
    AblationArm(3, "no color jitter", "color jitter off", dict(_RECIPE, color_jitter=False)),
    AblationArm(
        4,
        "+ greyscale",
        "greyscale added (the report's Model 4, 'without greyscale', is the recipe itself)",
        dict(_RECIPE, grayscale=True),
    ),
    AblationArm(5, "no SE", "squeeze-and-excitation blocks removed", dict(_RECIPE, use_se=False)),
)

TABLE_COLUMNS = (
    "model",  # the report's model number
    "name",
    "change",
    "seeds",  # space-separated
    "accuracy_mean",  # final test accuracy, percent, mean over seeds
    "accuracy_std",  # sample standard deviation over seeds (0 for one seed)
    "accuracies",  # per seed, percent, space-separated
    "best_accuracy_mean",  # the best epoch's accuracy (test, or validation with a split), percent, mean
    "test_loss_mean",  # final test loss, mean over seeds
    "parameters",  # counting BatchNorm statistics
    "epochs",
)


def _select_arms(models):
    by_number = {arm.model: arm for arm in ARMS}
    unknown = [m for m in models if m not in by_number]
    if unknown or not models:
        raise InvalidValueError(
            f"Argument `models` must be a non-empty selection of 1-5. Received: models={list(models)}"
        )
    return [by_number[m] for m in sorted(set(models))]


def _check_seeds(seeds):
    """Raises `InvalidValueError` unless `seeds` is a non-empty list of distinct seeds in [0, `MAX_SEED`]."""
    if not seeds or any(
        not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED for s in seeds
    ):
        raise InvalidValueError(
            f"Argument `seeds` must be a non-empty list of integers in "
            f"[0, {MAX_SEED}]. Received: seeds={seeds!r}"
        )
    if len(set(seeds)) < len(seeds):
        raise InvalidValueError(f"Argument `seeds` must not repeat. Received: seeds={seeds!r}")


def default_ablation_dir(config, seeds, models=(1, 2, 3, 4, 5), root="saved_models"):
    """`root/ablation-e<epochs>-<hash>`: a function of the base config, seeds and models.

    The hash is that of version 0.1.0 for a config that leaves the fields
    added since at their defaults (`TrainConfig.compatible_dict`), so an
    ablation started with 0.1.0 resumes from the same command line.
    """
    name = digest([resolve_config(config).compatible_dict(), list(seeds), sorted(models)])
    return os.path.join(root, f"ablation-e{config.epochs}-{name}")


def initial_weights_path(config, out_dir, seed):
    """Creates (once) and returns the starting model of every arm for `seed`.

    The model has Model 1's architecture (SE included), initialised after
    `keras.utils.set_random_seed(seed)` as `train()` would.
    """
    folder = os.path.join(out_dir, "initial_weights")
    path = os.path.join(folder, f"seed-{seed}.keras")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        keras.utils.set_random_seed(seed)
        model = build_from_config(dataclasses.replace(config, seed=seed, **ARMS[0].switches))
        save_model_atomic(model, path)
    return path


def run_ablation(
    config, out_dir, *, seeds=(0,), models=(1, 2, 3, 4, 5), data=None, overwrite=False, verbose=1
):
    """Trains the selected arms for every seed and writes the table and chart.

    Args:
        config: the base `TrainConfig` (epochs, data, widths, ...); its
            `seed` and its four switches are set per arm and seed.
        out_dir: the ablation folder (layout in the module docstring).
        seeds: distinct integers in [0, 2**32 - 1]; one run per arm and seed.
            Default (0,).
        models: the arms to run, numbers 1-5. Default all.
        data: optional preloaded `((x_train, y_train), (x_test, y_test))`;
            default: loaded once from the config's data fields.
        overwrite: restart every arm's run folder from scratch.
        verbose: passed to `train()`.

    Returns:
        The table rows (dicts with `TABLE_COLUMNS`), in model order.

    Raises:
        InvalidValueError: bad `seeds` or `models`, found before `out_dir`
            is created.
        ConfigError: an invalid config (a label of the data not below
            `num_classes` included), found before `out_dir` is created.
        RunFolderError: an arm's run folder holds a run of another config;
            the other errors of `train()` pass through as well.
    """
    arms = _select_arms(models)
    _check_seeds(seeds)
    resolve_config(config)
    if data is None:
        data = data_module.load_cifar10(
            config.data_dir, limit_train=config.limit_train, limit_test=config.limit_test
        )
    check_labels(config, data)
    os.makedirs(out_dir, exist_ok=True)
    with _arms_trace_their_own_steps():
        results = _run_arms(config, out_dir, arms, seeds, data, overwrite, verbose)
    rows = [_table_row(arm, seeds, results[arm.model]) for arm in arms]
    write_table(rows, out_dir, best_on="validation" if config.val_split is not None else "test")
    return rows


class _NewModelTracingFilter(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing".

    Every arm builds and compiles its own model, whose training and
    evaluation steps Keras wraps in new `tf.function`s; each is traced once,
    as it must be. TensorFlow's frequent-tracing detector counts traces per
    Python code object, so it adds up the first traces of the arms' distinct
    functions (five arms of a few steps each are enough) and warns about a
    retracing that does not happen.
    """

    def filter(self, record):
        # No public switch silences the detector for one caller; its records
        # are recognised by the function that emits them, not by their text.
        return record.funcName != "called_with_tracing"


@contextlib.contextmanager
def _arms_trace_their_own_steps():
    """While the arms train, TensorFlow's logger drops the false retracing warning."""
    logger, tracing_filter = logging.getLogger("tensorflow"), _NewModelTracingFilter()
    logger.addFilter(tracing_filter)
    try:
        yield
    finally:
        logger.removeFilter(tracing_filter)


def _run_arms(config, out_dir, arms, seeds, data, overwrite, verbose):
    """`{model: [RunResults of each seed]}` after training every arm for every seed."""
    results = {arm.model: [] for arm in arms}
    for seed in seeds:
        start = initial_weights_path(config, out_dir, seed)
        for arm in arms:
            if verbose:
                print(f"=== Ablation: Model {arm.model} ({arm.name}), seed {seed} ===")
            arm_config = dataclasses.replace(config, seed=seed, **arm.switches)
            run = train(
                arm_config,
                os.path.join(out_dir, arm.slug, f"seed-{seed}"),
                data=data,
                initial_weights=start,
                overwrite=overwrite,
                verbose=verbose,
            )
            results[arm.model].append(run.run_results)
    return results


def _table_row(arm, seeds, runs):
    accuracies = [100.0 * r.test_accuracy for r in runs]
    return {
        "model": arm.model,
        "name": arm.name,
        "change": arm.change,
        "seeds": " ".join(str(s) for s in seeds),
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "accuracies": " ".join(f"{a:.2f}" for a in accuracies),
        "best_accuracy_mean": statistics.fmean(100.0 * r.best_accuracy for r in runs),
        "test_loss_mean": statistics.fmean(r.test_loss for r in runs),
        "parameters": runs[0].parameters,
        "epochs": runs[0].epochs_trained,
    }


def write_table(rows, out_dir, best_on="test"):
    """Writes `ablation.csv`, `ablation.md` and `ablation.png` into `out_dir`, each atomically.

    Args:
        rows: the table rows (dicts with `TABLE_COLUMNS`).
        out_dir: the ablation folder.
        best_on: "test" or "validation": what chose the best epochs
            (`best_accuracy_mean`), said under the markdown table.

    Returns:
        `{"csv": path, "markdown": path, "chart": path}`.

    Raises:
        ValueError: `best_on` is neither "test" nor "validation".

    Example (`rows` as `run_ablation` returns them; it writes the table itself):

        paths = write_table(rows, "saved_models/ablation-e10-1a2b3c4d")
        paths["markdown"]  # 'saved_models/ablation-e10-1a2b3c4d/ablation.md'
    """
    if best_on not in ("test", "validation"):
        raise ValueError(
            f"Argument `best_on` must be 'test' or 'validation'. Received: best_on={best_on!r}"
        )
    paths = {
        "csv": os.path.join(out_dir, "ablation.csv"),
        "markdown": os.path.join(out_dir, "ablation.md"),
        "chart": os.path.join(out_dir, "ablation.png"),
    }
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(paths["csv"], table.getvalue())
    lines = [
        "| Model | Change | Test accuracy (%) | Std | Per seed | Best epoch (%) | Test loss | Parameters |",
        "| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']}: {row['name']} | {row['change']} | {row['accuracy_mean']:.2f} "
            f"| {row['accuracy_std']:.2f} | {row['accuracies']} | {row['best_accuracy_mean']:.2f} "
            f"| {row['test_loss_mean']:.4f} | {row['parameters']:,} |"
        )
    seeds = rows[0]["seeds"] if rows else ""
    epochs = rows[0]["epochs"] if rows else 0
    lines.append("")
    lines.append(
        f"{epochs} epochs per run, seeds {seeds}; final-epoch test accuracy; best epoch "
        f"by {best_on} accuracy."
    )
    files.write_text(paths["markdown"], "\n".join(lines) + "\n")
    plots.plot_ablation(rows, paths["chart"])
    return paths
