"""Metrics (registered in MMPretrain's ``METRICS``) and the pure functions behind them."""
from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
