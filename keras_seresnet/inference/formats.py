"""The export formats and the names their inputs and outputs have, in one place.

Imports nothing heavy, so the command line checks its arguments against
these before TensorFlow starts; `export.py` writes them and `runners.py`
runs them.

Example:

>>> from keras_seresnet.inference import formats
>>> formats.FILE_SUFFIXES["litert"]
'.tflite'
"""

import os

EXPORT_FORMATS = ("saved_model", "onnx", "litert")
FORMAT_NAMES = {"saved_model": "SavedModel", "onnx": "ONNX", "litert": "LiteRT"}
FILE_SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}  # the file formats' required suffixes
QUANTIZATIONS = (None, "float16", "dynamic")  # LiteRT weights: float32, float16, int8
RUNTIMES = {  # format -> (the module that runs it, the pip package that holds it)
    "saved_model": ("tensorflow", "tensorflow"),
    "onnx": ("onnxruntime", "onnxruntime"),
    "litert": ("ai_edge_litert", "ai-edge-litert"),
}
PIXELS_SIGNATURE = "serving_default"  # every format's signature of raw pixels
BYTES_SIGNATURE = "serve_image_bytes"  # the SavedModel's signature of encoded image files
PIXELS_INPUT = "image"  # float32 [N, 32, 32, 3] raw pixels in [0, 255]
BYTES_INPUT = "image_bytes"  # string [N], each an encoded image file
OUTPUT = "probabilities"  # float32 [N, num_classes], in every format and signature
# Where a SavedModel export keeps its copy of the `.keras` file: TF Serving's
# folder for files beside the graph that it does not load.
KERAS_COPY = os.path.join("assets.extra", "model.keras")
