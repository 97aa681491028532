"""Interoperability: importing the reference PyTorch checkpoints."""
