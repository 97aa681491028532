"""Running an exported model with its own runtime, without Keras: the check of every export.

`export_model` runs this module in a fresh Python process
(`python -m keras_seresnet.inference.runners ...`), so nothing of the
exporting process (Keras objects, traced functions, TensorFlow state) can
stand in for what the exported file itself gives. Each format is loaded by
the runtime its users have:

- "saved_model": TensorFlow (`tf.saved_model.load`), both signatures:
  `serving_default` on raw pixels, `serve_image_bytes` on encoded files.
- "onnx": ONNX Runtime (`onnxruntime`, CPU), no TensorFlow imported.
- "litert": LiteRT (`ai-edge-litert`), no TensorFlow imported.

Command line (the output `.npz` maps each `"<signature>/<output>"` to its array):

    python -m keras_seresnet.inference.runners FORMAT MODEL PIXELS.npy OUTPUT.npz [IMAGE_FILE ...]

A failure prints one line on stderr and exits with status 1.

Example (with a LiteRT export of a 10-class model):

    outputs = run_export("litert", "seresnet.tflite", np.zeros((2, 32, 32, 3), np.float32))
    outputs["serving_default/probabilities"].shape  # (2, 10)
"""

import importlib
import sys

import numpy as np

from keras_seresnet.inference.formats import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    FORMAT_NAMES,
    OUTPUT,
    PIXELS_INPUT,
    PIXELS_SIGNATURE,
    RUNTIMES,
)


def run_export(format, path, pixels, encoded=(), *, batch_size=256):
    """Runs an exported model on raw pixels (and, for a SavedModel, on encoded files).

    The model is loaded once and run `batch_size` images at a time.

    Args:
        format: "saved_model", "onnx" or "litert".
        path: the SavedModel folder, `.onnx` or `.tflite` file.
        pixels: float32 array [N, 32, 32, 3] of raw RGB pixels in [0, 255].
        encoded: for "saved_model", a sequence of encoded image files (bytes)
            for `serve_image_bytes`. Default empty: that signature is not run.
        batch_size: images per call. Default 256.

    Returns:
        dict `"<signature>/<output>"` -> NumPy array: always
        `"serving_default/probabilities"` (float32 [N, classes]); with
        `encoded`, `"serve_image_bytes/probabilities"`, `".../class_id"`
        (int64 [M]) and `".../class_name"` (str [M]).

    Raises:
        ValueError: an unknown `format`, or `encoded` for another format.
        ImportError: the format's runtime is not installed.
    """
    if format not in RUNTIMES:
        raise ValueError(
            f"Argument `format` must be one of {tuple(RUNTIMES)}. Received: format={format!r}"
        )
    if encoded and format != "saved_model":
        raise ValueError(
            f"Argument `encoded` is only for format='saved_model'. Received: format={format!r}"
        )
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or len(pixels) == 0:
        raise ValueError(
            "Argument `pixels` must be a batch [N, 32, 32, 3] with N >= 1. "
            f"Received shape {pixels.shape}"
        )
    runtime = import_runtime(format)
    if format == "saved_model":
        loaded = runtime.saved_model.load(str(path))
        results = _in_batches(
            _signature_caller(runtime, loaded, PIXELS_SIGNATURE, PIXELS_INPUT), pixels, batch_size
        )
        if len(encoded):
            results.update(
                _in_batches(
                    _signature_caller(runtime, loaded, BYTES_SIGNATURE, BYTES_INPUT),
                    np.array(list(encoded), dtype=object),
                    batch_size,
                )
            )  # bytes kept whole
        return results
    if format == "onnx":
        session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def predict(batch):
            (probabilities,) = session.run([OUTPUT], {PIXELS_INPUT: batch})
            return {f"{PIXELS_SIGNATURE}/{OUTPUT}": probabilities}
    else:
        runner = runtime.interpreter.Interpreter(model_path=str(path)).get_signature_runner(
            PIXELS_SIGNATURE
        )

        def predict(batch):
            return {f"{PIXELS_SIGNATURE}/{OUTPUT}": runner(**{PIXELS_INPUT: batch})[OUTPUT]}

    return _in_batches(predict, pixels, batch_size)


def _signature_caller(tf, loaded, signature, input_name):
    """`batch -> {"<signature>/<output>": array}` of a loaded SavedModel's signature."""
    function = loaded.signatures[signature]

    def call(batch):
        results = {}
        for name, value in function(**{input_name: tf.constant(batch)}).items():
            value = value.numpy()
            if value.dtype == object:  # tf.string -> Python str
                value = np.array([v.decode("utf-8") for v in value])
            results[f"{signature}/{name}"] = value
        return results

    return call


def _in_batches(predict, inputs, batch_size):
    parts = [predict(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def import_runtime(format):
    """The runtime module of `format` (`tensorflow`, `onnxruntime`, `ai_edge_litert.interpreter`).

    Raises:
        ImportError: it is not installed; the message names the pip package
            and the `export` extra that brings it.
    """
    module, package = RUNTIMES[format]
    try:
        runtime = importlib.import_module(module)
        if format == "litert":
            importlib.import_module("ai_edge_litert.interpreter")
    except ImportError as e:
        raise ImportError(
            f"Running a {FORMAT_NAMES[format]} export needs the `{package}` package ({e}); "
            "`pip install keras-seresnet[export]` installs it."
        ) from None
    return runtime


def main(argv=None):
    """The command line of the module docstring; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4:
        print(
            "usage: python -m keras_seresnet.inference.runners FORMAT MODEL PIXELS.npy "
            "OUTPUT.npz [IMAGE_FILE ...]",
            file=sys.stderr,
        )
        return 2
    format, path, pixels_path, output_path, *image_files = argv
    try:
        encoded = []
        for image_file in image_files:
            with open(image_file, "rb") as f:
                encoded.append(f.read())
        outputs = run_export(format, path, np.load(pixels_path), encoded)
        np.savez(output_path, **outputs)
    except Exception as e:  # noqa: BLE001  (any failure is the check's answer, in one line)
        print(f"{type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
