"""Data: CIFAR-10 sources (`cifar10.py`), image files (`images.py`), augmentation layers
(`augment.py`) and the tf.data pipelines (`pipeline.py`)."""
