"""The SE-ResNet builder (`seresnet.py`) and the layers it uses (`layers.py`).

Importing this subpackage registers the layers, so `.keras` files that name
them load with `keras.models.load_model`.
"""

from keras_seresnet.models import layers  # noqa: F401  (registers the fused BatchNormalization)
