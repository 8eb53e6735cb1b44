"""The package version (read by setup.py)."""
__all__ = ["__version__"]

__version__ = "0.1.0"
