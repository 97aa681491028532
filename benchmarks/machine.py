"""The CPU a benchmark ran on: its model, the features that decide its speed, a precision to use.

The features are the `/proc/cpuinfo` flags that matter for this model's
kernels: `avx2` and `avx512f` (float32 vector width), `avx512_bf16`
(bfloat16 dot products in AVX-512 registers, e.g. AMD Zen 4, Intel Cooper
Lake) and `amx_bf16` (bfloat16 matrix tiles, Intel Sapphire Rapids and
later). Without either bfloat16 feature, bfloat16 arithmetic is emulated
and `mixed_bfloat16` is slower than float32, so it is recommended for CPU
training only where the hardware has bfloat16 units (and, when a measurement
is given, only where it measured faster).
"""

import platform
from collections.abc import Iterable

RELEVANT_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
BF16_FEATURES = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def _cpuinfo_field(name, path=CPUINFO):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        return None
    return None


def cpu_model(path=CPUINFO) -> str:
    """The CPU's model name (`/proc/cpuinfo`, else `platform.processor()`), or "unknown CPU"."""
    return _cpuinfo_field("model name", path) or platform.processor() or "unknown CPU"


def detect_features(path=CPUINFO) -> frozenset | None:
    """The relevant features among the CPU's flags; None when the flags cannot be read (not Linux)."""
    flags = _cpuinfo_field("flags", path)
    if flags is None:
        return None
    return frozenset(RELEVANT_FEATURES).intersection(flags.split())


def parse_features(text: str) -> frozenset:
    """Features from a `--cpu-features` value: names separated by commas or spaces ("" or "none": none).

    Raises:
        ValueError: a name that is not one of `RELEVANT_FEATURES`.
    """
    names = {name for name in text.replace(",", " ").split() if name != "none"}
    unknown = sorted(names - set(RELEVANT_FEATURES))
    if unknown:
        raise ValueError(
            f"Argument `cpu_features` must name features among "
            f"{', '.join(RELEVANT_FEATURES)} (or 'none'). Received: "
            f"cpu_features={text!r}"
        )
    return frozenset(names)


def describe(features: Iterable[str] | None) -> str:
    """`features` as "avx2 yes, avx512f no, ..." in `RELEVANT_FEATURES` order."""
    if features is None:
        return "features unknown (no /proc/cpuinfo)"
    return ", ".join(f"{name} {'yes' if name in features else 'no'}" for name in RELEVANT_FEATURES)


def recommended_precision(
    features: Iterable[str] | None, measured_speedup: float | None = None
) -> tuple[str, str]:
    """The `TrainConfig.mixed_precision` to recommend for CPU training, and why.

    Args:
        features: the CPU's relevant features (None: unknown).
        measured_speedup: the mixed_bfloat16 training step's rate divided by
            float32's on this machine, if measured.

    Returns:
        `(precision, reason)`: "mixed_bfloat16" when the CPU has bfloat16
        units and, if measured, mixed_bfloat16 was faster; otherwise "off"
        (float32).
    """
    units = sorted(set(features or ()) & set(BF16_FEATURES))
    if not units:
        known = "unknown features" if features is None else "no avx512_bf16 or amx_bf16"
        return "off", f"{known}: bfloat16 is emulated on this CPU, float32 is faster"
    if measured_speedup is not None and measured_speedup <= 1.0:
        return "off", (
            f"bfloat16 units ({', '.join(units)}), but mixed_bfloat16 measured "
            f"{measured_speedup:.2f}x float32 here"
        )
    measured = "" if measured_speedup is None else f", measured {measured_speedup:.2f}x float32"
    return "mixed_bfloat16", f"bfloat16 units ({', '.join(units)}){measured}"
