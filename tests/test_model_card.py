"""benchmarks/model_card.py: the model card's tables from a run folder and an evaluation."""

import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from benchmarks import model_card  # noqa: E402
from keras_seresnet.training.history import write_history_csv  # noqa: E402

HISTORY = {
    "epoch": [0, 1, 2],
    "learning_rate": [0.05, 0.1, 0.01],
    "loss": [1.5, 1.2, 1.0],
    "accuracy": [0.5, 0.7, 0.8],
    "test_loss": [1.4, 1.1, 0.9],
    "test_accuracy": [0.79, 0.86, 0.851],
    "seconds": [60.0, 90.0, 30.0],
}


def test_time_to_accuracy_gives_the_first_epoch_at_each_level_and_its_minutes():
    lines = model_card.time_to_accuracy_table(HISTORY, levels=(0.80, 0.85, 0.90))
    assert lines[2:] == [
        "| 80% | 2 | 2.5 min |",
        "| 85% | 2 | 2.5 min |",
        "| 90% | not reached | - |",
    ]


def test_the_history_table_has_a_row_per_epoch_with_the_elapsed_minutes():
    lines = model_card.history_table(HISTORY)
    assert len(lines) == 2 + 3
    assert lines[-1] == "| 3 | 0.01000 | 1.0000 | 80.00% | 0.9000 | 85.10% | 30 | 3.0 |"


def test_the_command_prints_the_three_tables(tmp_path, capsys):
    rows = [dict(zip(HISTORY, values)) for values in zip(*HISTORY.values())]
    write_history_csv(tmp_path / "history.csv", rows)
    evaluation = {
        "accuracy": 0.9,
        "per_class_accuracy": {"cat": 0.8, "dog": 1.0},
        "tta": {"accuracy": 0.95, "per_class_accuracy": {"cat": 0.9, "dog": 1.0}},
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    assert model_card.main([str(tmp_path), str(tmp_path / "evaluation.json")]) == 0
    out = capsys.readouterr().out
    assert "| cat | 80.00% | 90.00% |" in out
    assert "| **all** | **90.00%** | **95.00%** |" in out
    assert "History (3 epochs, 3.0 min)" in out
