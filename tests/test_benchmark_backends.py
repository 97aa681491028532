"""benchmarks/backends.py: the same `model.fit` timed on each Keras backend."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


@pytest.mark.slow
def test_it_times_each_backend_and_writes_json(tmp_path):
    out = tmp_path / "backends.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "backends.py"),
            "--backends",
            "tensorflow",
            "jax",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--batch-size",
            "8",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("CPU: ")
    written = json.loads(out.read_text())
    assert [r["name"] for r in written["results"]] == ["tensorflow", "jax"]
    assert all(r["images_per_second"] > 0 and len(r["runs"]) == 1 for r in written["results"])
    table = result.stdout.splitlines()[-2:]
    assert table[0].startswith("tensorflow") and "1.00x" in table[0]
    assert table[1].startswith("jax")


def test_a_failed_backend_is_a_row_not_a_crash():
    sys.path.insert(0, ROOT)
    from benchmarks.backends import report
    from benchmarks.timing import Result

    lines = report(
        [
            Result.from_runs("tensorflow", [100.0], {"warmup_seconds": 3.0}).to_dict(),
            {"name": "torch", "error": ["ImportError: no torch"]},
        ]
    )
    assert lines[1].split()[:3] == ["tensorflow", "100.0", "1.00x"]
    assert lines[2].split()[:2] == ["torch", "failed"] and lines[2].endswith("no torch")
