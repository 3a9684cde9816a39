"""Temporary: ``apis/runner.py`` imports ``optimize_for_inference`` from here until it imports
it from :mod:`mmrepmlp.deployment`, where it lives; then this module goes."""
from ..deployment import optimize_for_inference

__all__ = ['optimize_for_inference']
