"""The SE-ResNet builder (`seresnet.py`) and the layers it uses."""
