"""The model card's tables (docs/weights.md), printed as Markdown from a run folder and an evaluation.

Three tables: the accuracy per class, plain and with flip TTA (from
`keras-seresnet-evaluate --tta --output-dir`'s `evaluation.json`); the epoch
and training time at which the per-epoch test accuracy first passed each
level; and the per-epoch history (from the run folder's `history.csv`).
Training time is the sum of the epochs' `seconds`.

Example (the tables of docs/weights.md):

    python benchmarks/model_card.py docs/runs/fast-final docs/runs/fast-final/evaluation.json
"""

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout

from keras_seresnet.training.history import read_history_csv  # noqa: E402

LEVELS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94)


def per_class_table(evaluation):
    """Accuracy per class and over all, plain and with TTA, from an `evaluation.json` dict."""
    tta = evaluation["tta"]
    lines = ["| class | accuracy | with flip TTA |", "| --- | ---: | ---: |"]
    for name, accuracy in evaluation["per_class_accuracy"].items():
        lines.append(f"| {name} | {accuracy:.2%} | {tta['per_class_accuracy'][name]:.2%} |")
    lines.append(f"| **all** | **{evaluation['accuracy']:.2%}** | **{tta['accuracy']:.2%}** |")
    return lines


def time_to_accuracy_table(history, levels=LEVELS):
    """The first epoch (1-based) and training minutes at which `test_accuracy` reached each level."""
    elapsed = elapsed_minutes(history)
    lines = [
        "| test accuracy (plain, per epoch) | first epoch | wall time |",
        "| --- | ---: | ---: |",
    ]
    for level in levels:
        reached = [i for i, a in enumerate(history["test_accuracy"]) if a >= level]
        if reached:
            lines.append(f"| {level:.0%} | {reached[0] + 1} | {elapsed[reached[0]]:.1f} min |")
        else:
            lines.append(f"| {level:.0%} | not reached | - |")
    return lines


def history_table(history):
    """One row per epoch: learning rate, training and test loss and accuracy, seconds, minutes."""
    lines = [
        "| epoch | learning rate (first step) | train loss | train accuracy | test loss | "
        "test accuracy | seconds | elapsed (min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, elapsed in enumerate(elapsed_minutes(history)):
        lines.append(
            f"| {history['epoch'][i] + 1} | {history['learning_rate'][i]:.5f} | "
            f"{history['loss'][i]:.4f} | {history['accuracy'][i]:.2%} | "
            f"{history['test_loss'][i]:.4f} | {history['test_accuracy'][i]:.2%} | "
            f"{history['seconds'][i]:.0f} | {elapsed:.1f} |"
        )
    return lines


def elapsed_minutes(history):
    """The training minutes at the end of each epoch: the running sum of `seconds`, / 60."""
    return [total / 60 for total in itertools.accumulate(history["seconds"])]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", help="a training run folder (its history.csv)")
    parser.add_argument("evaluation", help="evaluation.json of keras-seresnet-evaluate --tta")
    args = parser.parse_args(argv)
    history = read_history_csv(os.path.join(args.run_folder, "history.csv"))
    with open(args.evaluation, encoding="utf-8") as f:
        evaluation = json.load(f)
    minutes = elapsed_minutes(history)[-1]
    sections = (
        ("Accuracy per class", per_class_table(evaluation)),
        ("Time to accuracy", time_to_accuracy_table(history)),
        (f"History ({len(history['epoch'])} epochs, {minutes:.1f} min)", history_table(history)),
    )
    for title, lines in sections:
        print(f"{title}\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
