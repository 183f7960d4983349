import math
import pickle

import pytest

from sb3_sql import LogLinearSchedule


def test_log_linear_schedule_anneals_geometrically_then_stays():
    schedule = LogLinearSchedule(10.0, 0.1, end_fraction=0.5)
    assert schedule(1.0) == pytest.approx(10.0)
    assert schedule(0.75) == pytest.approx(1.0)  # half-way in log: the geometric mean
    assert schedule(0.5) == pytest.approx(0.1)
    assert schedule(0.2) == pytest.approx(0.1) and schedule(0.0) == pytest.approx(0.1)
    assert math.isclose(pickle.loads(pickle.dumps(schedule))(0.75), 1.0)


@pytest.mark.parametrize(
    "args, message",
    [((0.0, 1.0), "start must be a positive"), ((1.0, -1.0), "end must be a positive"), ((1.0, 2.0, 0.0), "end_fraction")],
)
def test_invalid_schedules_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        LogLinearSchedule(*args)
