"""Inference: safe model loading, `predict_dir`, evaluation and SavedModel export."""
