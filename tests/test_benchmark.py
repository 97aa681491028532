"""The benchmark logic (benchmarks/) on tiny settings: what is counted and printed, never how fast."""

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from benchmarks import cli, flops, machine, report, training
from benchmarks.timing import Prepared, Result, measure, mixed_targets, time_runs
from keras_seresnet.config import TrainConfig
from tests.tiny_model import TINY_MODEL

# Two stages of one block, SE in the second: a model that traces fast.
TINY = TrainConfig(**TINY_MODEL, batch_size=8, se_reduction=4)


def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_are_not_part_of_the_package():
    root = Path(__file__).resolve().parents[1]
    assert not (root / "keras_seresnet" / "benchmark.py").exists()
    assert 'include = ["keras_seresnet*"]' in (root / "pyproject.toml").read_text()
    for path in (root / "keras_seresnet").rglob("*.py"):
        assert (
            "import benchmarks" not in path.read_text()
            and "from benchmarks" not in path.read_text()
        )


def test_time_runs_reports_images_per_second():
    lines = []
    rates = time_runs(lambda: (100, 0.5), 2, lines.append)
    assert rates == [200.0, 200.0] and len(lines) == 2 and "100 images in 0.50 s" in lines[0]
    with pytest.raises(
        ValueError,
        match=r"Argument `repeats` must be a positive integer. "
        r"Received: repeats=0",
    ):
        time_runs(lambda: 1, 0)


def test_measure_times_in_rounds():
    order = []

    def bench(name):
        return Prepared(name, lambda: (order.append(name), (10, 0.1))[1], {"name": name})

    results = measure([bench("a"), bench("b")], 2)
    assert order == ["a", "b", "a", "b"]
    assert [(r.name, r.runs, r.details) for r in results] == [
        ("a", [100.0, 100.0], {"name": "a"}),
        ("b", [100.0, 100.0], {"name": "b"}),
    ]


def test_result_is_the_median_of_its_runs():
    result = Result.from_runs("x", [3.0, 1.0, 2.0], {"batch_size": 4})
    assert result.images_per_second == 2.0 and result.runs == [3.0, 1.0, 2.0]
    assert result.summary().startswith("x: 2.0 img/s (median of 3 runs")


def test_mixed_targets_are_distributions():
    targets = mixed_targets(np.array([0, 1, 2]), 4)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    np.testing.assert_allclose(targets[0], [0.7, 0.0, 0.3, 0.0])


def test_cpu_model_and_features_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU 9000\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512vl\n\n"
        "processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2\n"
    )
    assert machine.cpu_model(cpuinfo) == "Some CPU 9000"
    assert machine.detect_features(cpuinfo) == {"avx2", "avx512f", "avx512_bf16"}
    assert machine.detect_features(tmp_path / "missing") is None
    assert machine.describe({"avx2"}) == "avx2 yes, avx512f no, avx512_bf16 no, amx_bf16 no"


def test_cpu_features_override_is_validated():
    assert machine.parse_features("avx2, amx_bf16") == {"avx2", "amx_bf16"}
    assert machine.parse_features("none") == frozenset()
    with pytest.raises(
        ValueError,
        match=r"Argument `cpu_features` must name .* "
        r"Received: cpu_features='avx9'",
    ):
        machine.parse_features("avx9")


@pytest.mark.parametrize(
    "features, speedup, expected",
    [
        ({"avx2"}, None, "off"),
        ({"avx2"}, 1.5, "off"),  # emulated bfloat16 is never advised, whatever a run measured
        (None, None, "off"),
        ({"avx2", "avx512f", "avx512_bf16"}, None, "mixed_bfloat16"),
        ({"avx2", "amx_bf16"}, 2.5, "mixed_bfloat16"),
        ({"avx512_bf16"}, 0.9, "off"),  # units, but measured slower here
    ],
)
def test_recommended_precision(features, speedup, expected):
    precision, reason = machine.recommended_precision(features, speedup)
    assert precision == expected and reason


def test_multiply_adds_of_a_hand_counted_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 positions * 3*3*3*4
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 4*4 * 3*3*4*1
    x = keras.layers.BatchNormalization()(x)  # not counted
    inner = keras.Sequential([keras.Input((4, 4, 4)), keras.layers.Conv2D(2, 1)])  # 4*4 * 4*2
    x = keras.layers.GlobalAveragePooling2D()(inner(x))
    outputs = keras.layers.Dense(5)(x)  # 2*5
    model = keras.Model(inputs, outputs)
    expected = 8 * 8 * 3 * 3 * 3 * 4 + 4 * 4 * 3 * 3 * 4 + 4 * 4 * 4 * 2 + 2 * 5
    assert flops.multiply_adds(model) == expected
    assert flops.forward_flops(model) == 2 * expected
    assert flops.train_flops(model) == 3 * 2 * expected


def test_forward_flops_match_pytorch_counter_on_the_reference(default_model):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from reference.torch_seresnet import ReferenceSEResNet

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ReferenceSEResNet().eval()(torch.zeros(1, 3, 32, 32))
    assert flops.forward_flops(default_model) == counter.get_total_flops()


def test_multiply_adds_need_defined_shapes():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="fully defined shapes"):
        flops.multiply_adds(model)


def test_train_step_uses_the_package_compile_under_the_config_policy(monkeypatch):
    from keras_seresnet.training.loop import compile_model

    compiled = []

    def spy(model, config):
        compiled.append((keras.mixed_precision.global_policy().name, config.jit))
        return compile_model(model, config)

    monkeypatch.setattr(training, "compile_model", spy)
    config = TrainConfig.from_dict(
        {**TINY.to_dict(), "jit": False, "mixed_precision": "mixed_bfloat16"}
    )
    result = training.train_step_throughput(config, steps=1, repeats=1, name="step")
    assert compiled == [("mixed_bfloat16", False)]
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert result.name == "step" and result.images_per_second > 0
    assert (result.details["precision"], result.details["xla"], result.details["batch_size"]) == (
        "mixed_bfloat16",
        False,
        8,
    )
    with pytest.raises(ValueError, match="Received: steps=0"):
        training.train_step_throughput(TINY, steps=0)


def test_reference_in_four_forms():
    torch = pytest.importorskip("torch")
    from benchmarks import reference

    model = reference.Autocast(torch.nn.Linear(3, 2))
    assert model(torch.zeros(4, 3)).dtype == torch.float32
    results = reference.reference_throughput(TINY, steps=1, repeats=1, batch_size=2)
    assert [r.name for r in results] == [
        "reference-train-step",
        "reference-inference",
        "reference-train-step-channels-last",
        "reference-inference-channels-last",
        "reference-train-step-bf16",
        "reference-inference-bf16",
        "reference-train-step-bf16-channels-last",
        "reference-inference-bf16-channels-last",
    ]
    assert [r.details["batch_size"] for r in results[:2]] == [8, 2]
    with pytest.raises(ValueError, match="Argument `forms` must name"):
        reference.reference_throughput(TINY, forms=["fp8"])


RATES = {
    "reference-train-step": 100.0,
    "reference-train-step-channels-last": 125.0,
    "reference-train-step-bf16": 200.0,
    "reference-train-step-bf16-channels-last": 250.0,
    "reference-inference": 400.0,
    "reference-inference-channels-last": 500.0,
    "reference-inference-bf16": 800.0,
    "reference-inference-bf16-channels-last": 1000.0,
    "train-step": 150.0,
    "train-step-mixed_bfloat16": 300.0,
    "inference": 600.0,
    "inference-mixed_bfloat16": 1200.0,
    "fit": 120.0,
}


def test_speed_report_tables_targets_and_advice():
    info = ("Some CPU 9000", frozenset({"avx2", "avx512f", "avx512_bf16"}), "detected")
    text = report.speed_report(RATES, TrainConfig(), info, "mixed_bfloat16")
    assert text.splitlines()[0] == (
        "Machine: Some CPU 9000, "
        + str(training.cpus())
        + " cores; avx2 yes, avx512f yes, avx512_bf16 yes, "
        "amx_bf16 no (detected)"
    )
    assert "| keras_seresnet, float32 | 150.0 | 1.50x | 1.20x | 0.75x | 0.60x |" in text
    assert "| keras_seresnet, mixed_bfloat16 | 1,200.0 | 3.00x | 2.40x | 1.50x | 1.20x |" in text
    assert "training step, mixed_bfloat16 / float32: 2.00x (target >= 2.0x: met)" in text
    assert "training step, float32 / PyTorch notebook: 1.50x (target >= 1.3x: met)" in text
    assert (
        "train() end to end / PyTorch notebook's bare step: 1.20x (target >= 1.3x: not met)" in text
    )
    assert "mixed_bfloat16 / float32: training step 2.00x, inference 2.00x" in text
    assert "Recommended CPU training precision: --mixed-precision mixed_bfloat16" in text
    assert "compare different models" not in text


def test_speed_report_without_bfloat16_units():
    info = ("Old CPU", frozenset({"avx2"}), "--cpu-features")
    text = report.speed_report(RATES, TINY, info, "mixed_bfloat16")
    assert "(--cpu-features)" in text.splitlines()[0]
    assert "mixed_bfloat16 / float32: 2.00x (target >= 2.0x: not measurable here" in text
    assert "Recommended CPU training precision: --mixed-precision off" in text
    assert "compare different models" in text  # TINY's widths are not the reference's


def test_convolution_ceiling_runs_in_each_dtype_and_is_reported():
    prepared = [
        flops.prepare_convolution(dtype, batch_size=2, size=4, channels=8, steps=2)
        for dtype in ("float32", "bfloat16")
    ]
    results = measure(prepared, 1)
    assert [r.name for r in results] == ["conv-float32", "conv-bfloat16"]
    assert results[1].details == {
        "shape": "2x4x4x8",
        "dtype": "bfloat16",
        "steps": 2,
        "gflop_per_example": round(3 * 2 * 16 * 9 * 64 / 1e9, 4),
    }
    assert all(r.images_per_second > 0 for r in results)
    with pytest.raises(
        ValueError, match=r"Argument `dtype` must be one of .* Received: dtype='int8'"
    ):
        flops.prepare_convolution("int8")
    with pytest.raises(ValueError, match="Received: channels=0"):
        flops.prepare_convolution(channels=0)

    per_example = flops.convolution_flops()
    assert per_example == 3 * 2 * 16 * 16 * 9 * 128 * 128
    rates = {**RATES, "conv-float32": 1e9 / per_example, "conv-bfloat16": 1.8e9 / per_example}
    info = ("Some CPU 9000", frozenset({"avx512_bf16"}), "detected")
    assert (
        "Ceiling of the machine: TensorFlow's own 3x3 convolution with both gradients (128 "
        "channels, 16x16), bfloat16 2 GFLOP/s / float32 1 GFLOP/s = 1.80x"
        in report.speed_report(rates, TrainConfig(), info, "mixed_bfloat16")
    )
    assert "Ceiling" not in report.speed_report(RATES, TrainConfig(), info, "mixed_bfloat16")
    rates = {**RATES, "conv-float32": 1e9 / per_example, "conv-float16": 3e9 / per_example}
    assert "float16 3 GFLOP/s / float32 1 GFLOP/s = 3.00x" in report.speed_report(
        rates, TrainConfig(), info, "mixed_float16"
    )


def test_flops_line_counts_the_config_model():
    line = report.flops_line({"train-step": 1e3, "inference": 1e3}, TINY, matmul_size=64)
    model = training.build_from_config(TINY)
    assert f"forward {flops.forward_flops(model) / 1e9:.3f} G" in line
    assert f"train-step {1e3 * flops.train_flops(model) / 1e9:.0f} GFLOP/s" in line


def test_every_command_parses_its_flags_once():
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "--cpu-features",
            "avx2",
            "all",
            "--steps",
            "2",
            "--inference-batch-size",
            "4",
            "--reference-forms",
            "bf16",
        ]
    )
    assert (args.steps, args.inference_batch_size, args.reference_forms) == (2, 4, ["bf16"])
    args = parser.parse_args(
        [
            "speed",
            "--mixed-precision",
            "mixed_float16",
            "--fit-epochs",
            "3",
            "--inference-steps",
            "2",
        ]
    )
    assert (args.mixed_precision, args.fit_epochs, args.inference_steps) == ("mixed_float16", 3, 2)
    for argv in (
        ["--json", "r.json", "--repeats", "5", "speed"],
        ["speed", "--json", "r.json", "--repeats", "5"],
    ):
        args = parser.parse_args(argv)  # the common flags, before or after the command
        assert (args.json, args.repeats, args.cpus, args.config) == ("r.json", 5, None, None)
    assert parser.parse_args(["speed"]).repeats == 3
    for argv in (["--cpu-features", "avx9", "pipeline"], ["speed", "--mixed-precision", "off"]):
        with pytest.raises(SystemExit):
            cli.main(argv)


@pytest.mark.slow
def test_script_runs_every_benchmark_and_writes_json(tmp_path, capsys):
    config_path = tmp_path / "config.json"
    TINY.to_json(str(config_path))
    out = tmp_path / "results.json"
    script = load_script()
    assert (
        script.main(
            [
                "--config",
                str(config_path),
                "--repeats",
                "1",
                "--json",
                str(out),
                "all",
                "--images",
                "16",
                "--no-xla",
                "--steps",
                "1",
                "--jpegs",
                "6",
                "--inference-batch-size",
                "4",
                "--fit-images",
                "16",
                "--fit-epochs",
                "2",
                "--reference-steps",
                "1",
                "--reference-forms",
                "notebook",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    for line in (
        "pipeline: ",
        "train-step: ",
        "fit: ",
        "reference-train-step: ",
        "pipeline / train-step",
        "fit / reference-train-step",
        "inference / reference-inference",
        "FLOPs per image",
    ):
        assert line in printed
    results = json.loads(out.read_text())
    assert [r["name"] for r in results] == [
        "pipeline",
        "train-step",
        "inference",
        "decode",
        "predict-dir",
        "fit",
        "reference-train-step",
        "reference-inference",
    ]
    assert all(r["images_per_second"] > 0 and len(r["runs"]) == 1 for r in results)
    assert results[0]["details"]["batch_size"] == 8 and results[0]["details"]["images"] == 16


@pytest.mark.slow
def test_speed_prints_machine_both_precisions_and_advice(tmp_path, capsys):
    config_path = tmp_path / "config.json"
    TINY.to_json(str(config_path))
    script = load_script()
    assert (
        script.main(
            [
                "--config",
                str(config_path),
                "--repeats",
                "1",
                "--cpu-features",
                "avx2",
                "speed",
                "--steps",
                "1",
                "--inference-batch-size",
                "4",
                "--fit-images",
                "16",
                "--fit-epochs",
                "2",
                "--reference-steps",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Date: 20" in printed
    assert "avx2 yes, avx512f no, avx512_bf16 no, amx_bf16 no (--cpu-features)" in printed
    for row in (
        "| PyTorch as the notebook wrote it (NCHW float32) |",
        "| PyTorch, autocast bfloat16 + channels_last |",
        "| keras_seresnet, float32 |",
        "| keras_seresnet, mixed_bfloat16 |",
        "| keras_seresnet `train()` end to end",
    ):
        assert row in printed
    assert "train-step-mixed_bfloat16: " in printed and "precision=mixed_bfloat16" in printed
    assert "Recommended CPU training precision: --mixed-precision off" in printed
