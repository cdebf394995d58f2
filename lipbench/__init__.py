"""lipbench: the benchmark and evaluation suite for lip-sync video generation."""

__version__ = "0.1.0"  # the one place (pyproject.toml reads it); part of every unit's fingerprint
