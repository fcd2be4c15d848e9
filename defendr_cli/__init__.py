"""Defendr: train, attack, defend, evaluate and explain image classifiers under adversarial examples."""

__version__ = "0.1.0"
