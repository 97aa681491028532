"""The recipe's PyTorch reference, for the parity tests and the benchmarks; not installed."""
