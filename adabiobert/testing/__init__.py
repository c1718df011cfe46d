"""Fixtures shared by tests/ and benchmarks/: a tiny random BERT, a generator of PMC-shaped inputs."""
