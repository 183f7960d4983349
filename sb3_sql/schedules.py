"""Temperature schedules for SQL, callables of the progress remaining as SB3's schedules are.

Source: Haarnoja et al., "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017,
section 6.2 (fine-tuning anneals the temperature log-linearly over the first epochs).
"""

import math

from stable_baselines3.common.utils import LinearSchedule


class LogLinearSchedule:
    """Anneal from ``start`` to ``end`` linearly in ``log``, then stay at ``end``.

    ``value(p) = exp(log(start) + min(1, (1 - p) / end_fraction) * (log(end) - log(start)))`` for
    the progress remaining ``p`` (1 at the start of ``learn``, 0 at its end); it is SB3's
    ``LinearSchedule`` on the logarithm, and picklable, so models that use it save and load.
    Pass it as ``SQL(ent_coef=LogLinearSchedule(10.0, 1.0, 0.5))``.

    :param start: value at ``p = 1`` (positive).
    :param end: value from ``p = 1 - end_fraction`` on (positive).
    :param end_fraction: share of the training over which the value anneals, in ``(0, 1]``.
    :raises ValueError: for a non-positive or non-finite ``start`` or ``end``, or ``end_fraction``
        outside ``(0, 1]``.
    """

    def __init__(self, start: float, end: float, end_fraction: float = 1.0) -> None:
        for name, value in (("start", start), ("end", end)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number (annealing is log-linear), got {value}")
        if not 0.0 < end_fraction <= 1.0:
            raise ValueError(f"end_fraction must be in (0, 1] (the share of training spent annealing), got {end_fraction}")
        self.start = start
        self.end = end
        self.end_fraction = end_fraction
        self._log_schedule = LinearSchedule(math.log(start), math.log(end), end_fraction)

    def __call__(self, progress_remaining: float) -> float:
        return math.exp(self._log_schedule(progress_remaining))

    def __repr__(self) -> str:
        return f"LogLinearSchedule(start={self.start}, end={self.end}, end_fraction={self.end_fraction})"
