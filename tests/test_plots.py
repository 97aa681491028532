import math

import numpy as np
import pytest
from matplotlib.image import imread

from keras_seresnet.config import TrainConfig
from keras_seresnet.plots import (
    PLOT_FILES,
    history_figures,
    plot_ablation,
    plot_confusion_matrix,
    plot_history,
    plot_schedules,
)
from keras_seresnet.training.history import HistoryRow
from keras_seresnet.training.records import RunResults


def history(epochs=5, alpha=True, evaluation="val"):
    return {
        "epoch": list(range(epochs)),
        "learning_rate": [0.1 * (e + 1) / epochs for e in range(epochs)],
        "mixup_alpha": [0.4 - 0.05 * e if alpha else math.nan for e in range(epochs)],
        "loss": [2.0 - 0.1 * e for e in range(epochs)],
        f"{evaluation}_loss": [1.9 - 0.1 * e for e in range(epochs)],
        f"{evaluation}_accuracy": [0.3 + 0.1 * e for e in range(epochs)],
    }


def test_history_plots_are_real_pngs_and_need_no_display(tmp_path):
    paths = plot_history(history(), tmp_path)
    assert sorted(paths) == sorted(PLOT_FILES)
    for path in paths.values():
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500
        assert np.ptp(image) > 0.5  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        PLOT_FILES.values()
    )  # no temporaries left


def drawn_points(ax):
    """The finite (x, y) points of the axes' lines that lie inside its view."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    points = [xy for line in ax.get_lines() for xy in line.get_xydata() if np.isfinite(xy).all()]
    return [(x, y) for x, y in points if x0 <= x <= x1 and y0 <= y <= y1]


def integer_epoch_ticks(ax):
    low, high = sorted(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    return ticks and all(float(t).is_integer() and t >= 1 for t in ticks)


@pytest.mark.parametrize("epochs", [1, 2, 7])
@pytest.mark.parametrize("evaluation", ["test", "val"])
def test_every_figure_shows_its_data_at_1_based_integer_epochs(epochs, evaluation):
    figures = history_figures(history(epochs, evaluation=evaluation))
    for name, figure in figures.items():
        for ax in figure.axes:
            figure.canvas.draw()
            points = drawn_points(ax)
            assert {x for x, _ in points} == set(range(1, epochs + 1)), (name, ax.get_title())
            assert all(line.get_marker() not in (None, "None", "") for line in ax.get_lines()), name
            assert integer_epoch_ticks(ax), (name, ax.get_xticks(), ax.get_xlim())
            assert ax.get_xlabel() == "epoch"
    # The evaluation is named after its columns.
    label = "test" if evaluation == "test" else "validation"
    assert figures["accuracy"].axes[0].get_title() == f"{label.capitalize()} accuracy"
    legend = [t.get_text() for t in figures["accuracy"].axes[0].get_legend().get_texts()]
    assert legend[1] == f"best {100 * (0.3 + 0.1 * (epochs - 1)):.2f}% (epoch {epochs})"


def test_history_without_evaluation_columns_is_refused():
    bad = history()
    del bad["val_loss"], bad["val_accuracy"]
    with pytest.raises(ValueError, match="test_loss/test_accuracy or val_loss/val_accuracy"):
        history_figures(bad)


def test_schedules_plot_handles_mixup_off_and_a_single_epoch(tmp_path):
    paths = plot_history(history(epochs=1, alpha=False), tmp_path)
    assert all(imread(p).size for p in paths.values())
    alpha_ax = history_figures(history(epochs=1, alpha=False))["schedules"].axes[1]
    assert [t.get_text() for t in alpha_ax.texts] == ["mixup off"]


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_schedules_plot_draws_both_units_and_the_runs_own_prominently(unit):
    config = TrainConfig(epochs=2, schedule_unit=unit)
    logged = dict(history(2), learning_rate=[0.1, 0.1], mixup_alpha=[0.4, 0.2])
    lr_ax, alpha_ax = history_figures(logged, config=config, steps_per_epoch=10)["schedules"].axes
    lines = {line.get_label(): line for line in lr_ax.get_lines()}
    own, other = f"{unit} unit (this run)", f"{'step' if unit == 'epoch' else 'epoch'} unit"
    assert set(lines) == {own, other, "logged (first step of each epoch)"}
    assert lines[own].get_linewidth() > lines[other].get_linewidth()
    step_line = lines[own if unit == "step" else other]
    x, lr = step_line.get_xdata(), step_line.get_ydata()
    assert len(x) == 21 and x[0] == 1 and x[-1] == 3  # 20 steps, held until the run's end
    assert lr[9] == pytest.approx(0.1) and lr[19] == pytest.approx(
        0.001
    )  # the floor at the last step
    epoch_line = lines[own if unit == "epoch" else other]
    np.testing.assert_allclose(epoch_line.get_ydata(), [0.1, 0.1, 0.1])  # 2 epochs: no annealing
    assert len(alpha_ax.get_lines()) == 3
    assert lr_ax.get_xlim()[1] >= 3


def test_schedules_plot_of_a_long_run_stays_small(tmp_path):
    config = TrainConfig(schedule_unit="step")
    logged = history(250)
    lr_ax = history_figures(logged, config=config, steps_per_epoch=391)["schedules"].axes[0]
    step_line = [line for line in lr_ax.get_lines() if line.get_label().startswith("step")][0]
    assert len(step_line.get_xdata()) <= 2002
    assert step_line.get_ydata()[-1] == pytest.approx(0.001)
    assert imread(
        plot_schedules(logged, tmp_path / "s.png", config=config, steps_per_epoch=391)
    ).size


# A step-unit run of 2 epochs over 10 training images in batches of 4: 3 steps per epoch.
STEP_RUN = TrainConfig(epochs=2, warmup_epochs=1, schedule_unit="step", batch_size=4)
STEP_RUN_ROWS = [
    HistoryRow(
        epoch=e,
        learning_rate=lr,
        mixup_alpha=alpha,
        loss=2.0 - e,
        accuracy=0.2,
        test_loss=2.1 - e,
        test_accuracy=0.2 * e,
        seconds=1.0,
    )
    for e, lr, alpha in ((0, 1 / 30, 0.4), (1, 0.1, 0.2))
]
# What a finished STEP_RUN of 10 training images leaves in results.json.
STEP_RUN_RESULTS = RunResults(
    monitor="test_accuracy",
    best_epoch=1,
    best_accuracy=0.2,
    test_accuracy=0.2,
    test_loss=1.1,
    test_accuracy_tta=0.2,
    epochs_trained=2,
    train_images=10,
    val_images=None,
    test_images=4,
    parameters=15,
    train_seconds=2.0,
    initial_weights=None,
)


def expected_step_run_schedules(history, path):
    """The schedules PNG of `STEP_RUN` with its learning rate and alpha at each of its 6 steps."""
    return plot_schedules(history, path, config=STEP_RUN, steps_per_epoch=3).read_bytes()


def test_keras_seresnet_plots_draws_a_step_unit_runs_schedules_at_every_step(
    tmp_path, no_process_settings
):
    from keras_seresnet.cli import plots
    from keras_seresnet.training.history import read_history_csv, write_history_csv

    run = tmp_path / "run"
    run.mkdir()
    STEP_RUN.to_json(run / "config.json")
    write_history_csv(run / "history.csv", STEP_RUN_ROWS)
    (run / "results.json").write_text(STEP_RUN_RESULTS.to_json())
    assert plots.main([str(run)]) == 0
    expected = expected_step_run_schedules(
        read_history_csv(run / "history.csv"), tmp_path / "expected.png"
    )
    assert (run / "plots" / "schedules.png").read_bytes() == expected


def test_a_step_unit_runs_folder_draws_its_schedules_at_every_step(tmp_path):
    import keras

    from keras_seresnet.training.history import rows_to_history
    from keras_seresnet.training.run_folder import RunFolder

    folder = RunFolder(tmp_path / "run")
    folder.open(STEP_RUN.to_dict())
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    folder.finish(model, STEP_RUN_RESULTS, STEP_RUN_ROWS)
    expected = expected_step_run_schedules(
        rows_to_history(STEP_RUN_ROWS), tmp_path / "expected.png"
    )
    assert (tmp_path / "run" / "plots" / "schedules.png").read_bytes() == expected


def test_ablation_chart(tmp_path):
    rows = [
        {"model": 1, "name": "full recipe", "accuracy_mean": 95.4, "accuracy_std": 0.1},
        {"model": 5, "name": "no SE", "accuracy_mean": 94.9, "accuracy_std": 0.0},
    ]
    image = imread(plot_ablation(rows, tmp_path / "ablation.png"))
    assert image.shape[1] >= 700


def test_a_plot_that_fails_while_writing_leaves_the_previous_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    paths = plot_history(history(), tmp_path)
    before = {name: open(path, "rb").read() for name, path in paths.items()}

    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half a PNG")
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="No space left"):
        plot_history(history(3), tmp_path)
    with pytest.raises(OSError, match="No space left"):
        plot_confusion_matrix(np.eye(10, dtype=int), path=tmp_path / "loss.png")
    assert {name: open(path, "rb").read() for name, path in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        PLOT_FILES.values()
    )  # no temporaries


def test_confusion_matrix_refuses_class_names_given_as_one_string():
    from keras_seresnet.plots import plot_confusion_matrix

    with pytest.raises(ValueError, match=r"not a single string\. Received: class_names='abc'"):
        plot_confusion_matrix(np.eye(3, dtype=int), class_names="abc")
