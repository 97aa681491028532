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

Example:

>>> import numpy as np
>>> outputs = run_export("litert", "seresnet.tflite", np.zeros((2, 32, 32, 3), np.float32))
>>> outputs["serving_default/probabilities"].shape
(2, 10)
"""

import importlib
import sys

import numpy as np

from keras_seresnet.inference.formats import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    OUTPUT,
    PIXELS_INPUT,
    PIXELS_SIGNATURE,
    RUNTIMES,
)


def run_export(format, path, pixels, encoded=()):
    """Runs an exported model on raw pixels (and, for a SavedModel, on encoded files).

    Args:
        format: "saved_model", "onnx" or "litert".
        path: the SavedModel folder, `.onnx` or `.tflite` file.
        pixels: float32 array [N, 32, 32, 3] of raw RGB pixels in [0, 255].
        encoded: for "saved_model", a sequence of encoded image files (bytes)
            for `serve_image_bytes`. Default empty: that signature is not run.

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
    runtime = import_runtime(format)
    pixels = np.asarray(pixels, dtype=np.float32)
    if format == "saved_model":
        return _run_savedmodel(runtime, path, pixels, encoded)
    if format == "onnx":
        session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (probabilities,) = session.run([OUTPUT], {PIXELS_INPUT: pixels})
    else:
        interpreter = runtime.interpreter.Interpreter(model_path=str(path))
        runner = interpreter.get_signature_runner(PIXELS_SIGNATURE)
        probabilities = runner(**{PIXELS_INPUT: pixels})[OUTPUT]
    return {f"{PIXELS_SIGNATURE}/{OUTPUT}": np.asarray(probabilities)}


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
            f"Checking a {format} export needs the `{package}` package ({e}); install it "
            "with `pip install keras-seresnet[export]`."
        ) from None
    return runtime


def _run_savedmodel(tf, path, pixels, encoded):
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.signatures[PIXELS_SIGNATURE](**{PIXELS_INPUT: tf.constant(pixels)})
    results = {f"{PIXELS_SIGNATURE}/{k}": v.numpy() for k, v in outputs.items()}
    if encoded:
        outputs = loaded.signatures[BYTES_SIGNATURE](
            **{BYTES_INPUT: tf.constant(list(encoded), dtype=tf.string)})
        for name, value in outputs.items():
            value = value.numpy()
            if value.dtype == object:  # tf.string -> Python str
                value = np.array([v.decode("utf-8") for v in value])
            results[f"{BYTES_SIGNATURE}/{name}"] = value
    return results


def main(argv=None):
    """The command line of the module docstring; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4:
        print("usage: python -m keras_seresnet.inference.runners FORMAT MODEL PIXELS.npy "
              "OUTPUT.npz [IMAGE_FILE ...]", file=sys.stderr)
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
