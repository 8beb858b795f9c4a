"""The trailing detector's rule: one set of settings for every step size.

The evaluation on the real labelled incidents
(:mod:`bgp_orchestrator.anomaly.incidents`) and the fitting job
(:func:`bgp_orchestrator.anomaly.multivariate.live_params`) both take their
:class:`~bgp_orchestrator.anomaly.trailing.TrailingParams` from
:meth:`TrailingRule.params`, so the settings measured on the real sets are the
ones the live job runs with, at whatever step the job fits.

Two settings are in seconds rather than steps because their reason is:

- ``span_s``: the values scored are sums over this long (at least one step), so
  a collector that writes its updates in bursts every 30 s reads as a steady
  rate at 10-s steps; at a minute or an hour it is one step;
- ``confirm_s``: ``persist`` steps out before one is reported, but never more
  steps than fit in this long, so the confirmation costs at most this much of
  the 15 minutes an incident must be detected within (at hourly steps: no
  persistence, the hour itself is the confirmation).

The rest are in steps, ``hold_k`` included: once an incident has started
(beyond ``k``), it goes on, and stays out of the baseline, while features stay
beyond ``hold_k`` (on Slammer the worm's hours of decaying tail were otherwise
let into the baseline and missed: point-wise F1 0.64 without, 0.99 with, the
same alarms).

The values are those chosen by :mod:`bgp_orchestrator.anomaly.rule_choice` on
the real sets (``bench/anomaly_fit.py --incidents-only --choose-trailing``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bgp_orchestrator.anomaly.trailing import TrailingParams
from bgp_orchestrator.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class TrailingRule:
    window: int = 30  # steps of trailing baseline
    min_history: int = 6  # steps before the first verdict
    k: float = 5.0  # robust z beyond which a feature is out of its baseline
    min_sigma: float = 0.5  # spread floor (log1p units for volumes)
    persist: int = 3  # consecutive out steps before one is reported ...
    confirm_s: int = 300  # ... as long as they fit in this many seconds
    span_s: int = 30  # seconds summed into each scored value (0: one step)
    hold_k: float = 2.0  # an incident goes on while features stay beyond this (0: k)

    def __post_init__(self) -> None:
        if self.confirm_s < 0:
            raise InvalidInput("bad-confirm", "confirm_s must not be negative", "confirm_s")
        if self.span_s < 0:
            raise InvalidInput("bad-span", "span_s must not be negative", "span_s")
        self.params(1)  # the step-free checks of TrailingParams, raised here

    def params(self, step_s: int) -> TrailingParams:
        """The detector's settings at steps of ``step_s`` seconds."""
        if step_s <= 0:
            raise InvalidInput("bad-step", "step_s must be positive", "step_s", step_s)
        span = max(1, math.ceil(self.span_s / step_s)) if self.span_s else 1
        persist = max(1, min(self.persist, 1 + self.confirm_s // step_s))
        return TrailingParams(
            window=self.window,
            min_history=self.min_history,
            k=self.k,
            min_series=1,
            min_sigma=self.min_sigma,
            span=span,
            persist=persist,
            hold_k=self.hold_k,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The rule the evaluation and the fitting job use.
RULE = TrailingRule()
