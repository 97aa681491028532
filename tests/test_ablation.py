import csv
import json
import os

import pytest
from test_train import TINY, TINY_FLAGS, load_script

from keras_seresnet import TrainConfig
from keras_seresnet.training.ablation import ARMS, default_ablation_dir, run_ablation


@pytest.mark.slow
def test_ablation_writes_table_chart_and_shares_initial_weights(tiny_image_tree, tmp_path, capsys):
    out = tmp_path / "ablation"
    config = TrainConfig(**TINY, data_dir=str(tiny_image_tree), epochs=1)
    rows = run_ablation(config, out, seeds=(0,), models=(5, 1), verbose=0)
    assert [row["model"] for row in rows] == [1, 5]
    assert sorted(os.listdir(out)) == [
        "ablation.csv",
        "ablation.md",
        "ablation.png",
        "initial_weights",
        "model1-full-recipe",
        "model5-no-se",
    ]
    for row, arm in zip(rows, (ARMS[0], ARMS[4])):
        run = out / arm.slug / "seed-0"
        results = json.loads((run / "results.json").read_text())
        assert row["accuracy_mean"] == pytest.approx(100 * results["test_accuracy"])
        assert results["initial_weights"] == str(out / "initial_weights" / "seed-0.keras")
        config_used = json.loads((run / "config.json").read_text())
        assert config_used["use_se"] == (arm.model != 5) and config_used["seed"] == 0
    assert rows[1]["parameters"] < rows[0]["parameters"]
    markdown = (out / "ablation.md").read_text()
    assert "| 1: full recipe |" in markdown and "| 5: no SE |" in markdown
    csv_lines = (out / "ablation.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,name,change,seeds,accuracy_mean") and len(csv_lines) == 3

    # The script with the same settings finds both runs finished and rewrites the table.
    capsys.readouterr()
    rc = load_script("ablation").main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--epochs",
            "1",
            "--models",
            "1",
            "5",
            "--out",
            str(out),
            "--quiet",
            *TINY_FLAGS,
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0 and printed.count("already finished") == 2
    assert f"Model 5 (no SE): {rows[1]['accuracy_mean']:.2f}%" in printed


@pytest.mark.parametrize(
    "changes, seeds, models, name",
    [  # Computed with default_ablation_dir of version 0.1.0 (commit 4373dac).
        ({}, (0,), (1, 2, 3, 4, 5), "ablation-e250-e4d9b2ba"),
        (
            {"epochs": 4, "limit_train": 25000, "mixed_precision": "mixed_bfloat16"},
            (0, 1, 2),
            (1, 2, 3, 4, 5),
            "ablation-e4-032b92e9",
        ),
        (
            {"epochs": 2, "limit_train": 512, "seed": 3, "strategy": "mirrored"},
            (0, 1),
            (1, 2),
            "ablation-e2-dd7b5777",
        ),
    ],
)
def test_the_default_ablation_folder_keeps_its_0_1_0_name(changes, seeds, models, name):
    config = TrainConfig(**changes)
    assert default_ablation_dir(config, seeds, models) == os.path.join("saved_models", name)
    stepped = TrainConfig(**changes, schedule_unit="step")
    assert default_ablation_dir(stepped, seeds, models) != os.path.join("saved_models", name)


def test_ablation_script_rejects_the_switches_it_sets(capsys):
    with pytest.raises(SystemExit):
        load_script("ablation").main(["--no-se"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --no-se" in err


def test_arms_are_the_reports_models_with_one_change_each():
    recipe = ARMS[0].switches
    assert recipe == {
        "use_se": True,
        "mixup_cutout": True,
        "color_jitter": True,
        "grayscale": False,
    }
    changed = [{k for k in recipe if arm.switches[k] != recipe[k]} for arm in ARMS[1:]]
    assert changed == [{"mixup_cutout"}, {"color_jitter"}, {"grayscale"}, {"use_se"}]
    assert [arm.slug for arm in ARMS] == [
        "model1-full-recipe",
        "model2-no-mixup-cutout",
        "model3-no-color-jitter",
        "model4-greyscale",
        "model5-no-se",
    ]
    with pytest.raises(ValueError, match=r"models=\[6\]"):
        run_ablation(TrainConfig(), "unused", models=(6,))


@pytest.mark.parametrize(
    "seeds, message",
    [
        (
            [-1],
            r"Argument `seeds` must be a non-empty list of integers in \[0, 4294967295\]. "
            r"Received: seeds=\[-1\]$",
        ),
        ([0, 2**32], r"in \[0, 4294967295\]. Received: seeds=\[0, 4294967296\]$"),
        ([], r"non-empty.*Received: seeds=\[\]$"),
        ([0, 0], r"^Argument `seeds` must not repeat. Received: seeds=\[0, 0\]$"),
        ([1, 2, 1], r"^Argument `seeds` must not repeat. Received: seeds=\[1, 2, 1\]$"),
    ],
)
def test_bad_seeds_are_refused_before_anything_is_created(tmp_path, seeds, message):
    out = tmp_path / "abl"
    with pytest.raises(ValueError, match=message):
        run_ablation(TrainConfig(**TINY, epochs=1), out, seeds=seeds, verbose=0)
    assert not out.exists()


def test_ablation_script_with_a_negative_seed_is_one_line_and_creates_nothing(
    tiny_image_tree, tmp_path, capsys
):
    out = tmp_path / "abl"
    rc = load_script("ablation").main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--epochs",
            "1",
            "--seeds",
            "-1",
            "--out",
            str(out),
            "--quiet",
            *TINY_FLAGS,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Received: seeds=[-1]" in err
    assert not out.exists()


def test_labels_num_classes_does_not_cover_fail_before_the_ablation_folder(
    tiny_image_tree, tmp_path
):
    out = tmp_path / "abl"
    config = TrainConfig(**TINY, data_dir=str(tiny_image_tree), epochs=1, num_classes=5)
    with pytest.raises(
        ValueError,
        match=r"`num_classes` must be greater than the data's largest "
        r"label \(9\). Received: num_classes=5",
    ):
        run_ablation(config, out, verbose=0)
    assert not out.exists()


@pytest.mark.slow
def test_five_arms_log_no_retracing_warning_and_leave_the_logger_as_it_was(tmp_path, caplog):
    import logging

    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 10
    config = TrainConfig(**TINY, epochs=1)
    logger = logging.getLogger("tensorflow")
    filters = list(logger.filters)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        # One evaluation batch per arm: each new model's first trace is counted.
        run_ablation(
            config, tmp_path, models=(1, 2, 3, 4, 5), data=((x, y), (x[:8], y[:8])), verbose=0
        )
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    assert logger.filters == filters


def test_every_arm_starts_from_the_seeds_initial_weights(tmp_path):
    import keras
    import numpy as np

    from keras_seresnet.models.seresnet import build_from_config
    from keras_seresnet.training.ablation import initial_weights_path
    from keras_seresnet.training.loop import copy_matching_weights

    config = TrainConfig(**TINY)
    path = initial_weights_path(config, tmp_path, seed=3)
    assert initial_weights_path(config, tmp_path, seed=3) == path  # created once
    start = {layer.name: layer.get_weights() for layer in keras.models.load_model(path).layers}
    for arm in ARMS:
        keras.utils.set_random_seed(100 + arm.model)  # another init: the copy must overwrite it
        model = build_from_config(TrainConfig(**TINY, seed=3, **arm.switches))
        copied, missing = copy_matching_weights(path, model)
        assert missing == []  # every layer of every arm comes from the file (Model 5 lacks only SE)
        for layer in model.layers:
            for got, want in zip(layer.get_weights(), start.get(layer.name, [])):
                np.testing.assert_array_equal(got, want)


def test_ablation_with_a_validation_split_finishes_and_writes_its_table(
    tiny_image_tree, tmp_path, capsys
):
    out = tmp_path / "abl"
    rc = load_script("ablation").main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--epochs",
            "1",
            "--models",
            "1",
            "--val-split",
            "10",
            "--out",
            str(out),
            "--quiet",
            *TINY_FLAGS,
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    results = json.loads((out / "model1-full-recipe" / "seed-0" / "results.json").read_text())
    assert results["val_images"] == 10
    with open(out / "ablation.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["best_accuracy_mean"]) == pytest.approx(100 * results["best_val_accuracy"])
    assert float(row["accuracy_mean"]) == pytest.approx(100 * results["test_accuracy"])
    assert "best epoch by validation accuracy." in (out / "ablation.md").read_text()
