"""The benchmarks run end to end on tiny settings (their figures are not asserted)."""

import importlib.util
import json
from pathlib import Path

import pytest

from keras_seresnet import benchmark
from keras_seresnet.config import TrainConfig

TINY = TrainConfig(batch_size=8, widths=(8, 16, 16, 16), se_reduction=4)


def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_runs_reports_images_per_second():
    lines = []
    rates = benchmark.time_runs(lambda: 100, 2, lines.append)
    assert len(rates) == 2 and all(r > 0 for r in rates) and len(lines) == 2
    with pytest.raises(ValueError, match="repeats"):
        benchmark.time_runs(lambda: 1, 0)


@pytest.mark.slow
def test_script_runs_every_benchmark_and_writes_json(tmp_path, capsys):
    config_path = tmp_path / "config.json"
    TINY.to_json(str(config_path))
    out = tmp_path / "results.json"
    script = load_script()
    assert script.main(["--config", str(config_path), "--repeats", "1", "--json", str(out),
                        "all", "--images", "16", "--no-xla", "--steps", "1", "--jpegs", "6",
                        "--inference-batch-size", "4", "--fit-images", "16", "--fit-epochs", "2",
                        "--reference-steps", "1"]) == 0
    printed = capsys.readouterr().out
    for line in ("pipeline: ", "train-step: ", "fit: ", "reference-train-step: ",
                 "pipeline / train-step", "fit / reference-train-step",
                 "inference / reference-inference", "matrix multiply: "):
        assert line in printed
    results = json.loads(out.read_text())
    assert [r["name"] for r in results] == [
        "pipeline", "train-step", "inference", "decode", "predict-dir", "fit",
        "reference-train-step", "reference-inference"]
    assert all(r["images_per_second"] > 0 and len(r["runs"]) == 1 for r in results)
    assert results[0]["details"]["batch_size"] == 8 and results[0]["details"]["images"] == 16
