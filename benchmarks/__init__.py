"""Measurements an operator can rerun on their own machine (see README.md here)."""
