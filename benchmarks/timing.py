"""Timed runs, their results, and the seeded synthetic inputs every benchmark uses.

Each benchmark warms up first (tracing, compilation), then times several runs
and reports the median, so one slow run on a shared machine does not decide
the figure. Inputs are synthetic and seeded: throughput does not depend on
pixel values.
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass
class Result:
    """One benchmark's outcome.

    Attributes:
        name: what was measured ("pipeline", "train-step", ...).
        images_per_second: median over the timed runs.
        runs: images per second of each timed run.
        details: settings that produced the figure (batch size, precision, ...).
    """

    name: str
    images_per_second: float
    runs: list[float]
    details: dict

    @classmethod
    def from_runs(cls, name: str, runs: list[float], details: dict) -> "Result":
        """The `Result` whose figure is the median of `runs`."""
        return cls(name, statistics.median(runs), list(runs), details)

    def summary(self) -> str:
        runs = ", ".join(f"{r:,.0f}" for r in self.runs)
        settings = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return (
            f"{self.name}: {self.images_per_second:,.1f} img/s "
            f"(median of {len(self.runs)} runs: {runs}; {settings})"
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_positive_int(name, value):
    """Raises a Keras-style `ValueError` unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )


@dataclasses.dataclass
class Prepared:
    """A benchmark built and warmed up, ready to be timed.

    Attributes:
        name: the `Result`'s name.
        run: one timed run, returning what `time_runs` accepts.
        details: the `Result`'s details.
    """

    name: str
    run: Callable[[], object]
    details: dict


def measure(
    benchmarks: Sequence[Prepared], repeats: int, progress: Callable[[str], None] | None = None
) -> list[Result]:
    """Times every benchmark `repeats` times, in rounds, and returns their `Result`s in order.

    Round r times run r of each benchmark in turn, so a machine whose load
    drifts over the minutes slows every benchmark alike and their ratios stay
    fair (the timings of one benchmark are never minutes apart from another's).

    Raises:
        ValueError: `repeats` is not a positive integer.
    """
    check_positive_int("repeats", repeats)
    rates = [[] for _ in benchmarks]
    for round_ in range(repeats):
        for benchmark, runs in zip(benchmarks, rates):
            runs.append(
                _time_once(
                    benchmark.run, progress, f"{benchmark.name}, round {round_ + 1}/{repeats}"
                )
            )
    return [Result.from_runs(b.name, runs, b.details) for b, runs in zip(benchmarks, rates)]


def time_runs(
    run: Callable[[], int],
    repeats: int,
    progress: Callable[[str], None] | None = None,
    label: str = "run",
) -> list[float]:
    """Calls `run()` `repeats` times; returns images per second of each call.

    Args:
        run: does the work and returns the number of images it processed,
            or `(images, seconds)` when it times itself (to leave out work
            that is not the benchmark's, such as a teardown).
        repeats: number of timed calls, >= 1.
        progress: called with a line after each call (e.g. `print`); None: quiet.
        label: names the calls in the progress lines.

    Raises:
        ValueError: `repeats` is not a positive integer.
    """
    check_positive_int("repeats", repeats)
    return [_time_once(run, progress, f"{label} {i + 1}/{repeats}") for i in range(repeats)]


def _time_once(run, progress, label):
    """Images per second of one call of `run` (see `time_runs`), reported to `progress`."""
    start = time.perf_counter()
    images = run()
    seconds = time.perf_counter() - start
    if isinstance(images, tuple):
        images, seconds = images
    if progress:
        progress(f"  {label}: {images:,} images in {seconds:.2f} s = {images / seconds:,.1f} img/s")
    return images / seconds


def synthetic_cifar(num_images, seed=0, num_classes=10):
    """Seeded random uint8 images [N, 32, 32, 3] and int64 labels [N] in [0, num_classes)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, num_classes, num_images).astype(np.int64)


def mixed_targets(labels, num_classes):
    """Float32 [N, num_classes] mixup-like targets: 0.7 of each label, 0.3 of the reversed batch's."""
    eye = np.eye(num_classes, dtype=np.float32)
    return 0.7 * eye[labels] + 0.3 * eye[labels[::-1]]


def cpus():
    """The number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()
