"""Phase windows, time windows and run lengths on worked examples."""

import numpy as np

from rosace_scheduler.constraints import phase_mask, remaining_counts, run_lengths, unix_to_jd, window_mask


def test_phase_window_worked_example():
    # t0 = JD 2460000.5, period 2 d: 0.5 d later the phase is 0.25
    t0 = 2460000.5
    unix0 = (t0 - 2440587.5) * 86400
    times = unix0 + np.array([0.0, 0.5, 1.0, 1.5, 1.9]) * 86400
    assert np.allclose(np.mod((unix_to_jd(times) - t0) / 2.0, 1.0), [0, 0.25, 0.5, 0.75, 0.95])
    assert phase_mask(times, t0, 2.0, [(0.2, 0.3)]).tolist() == [False, True, False, False, False]
    # an interval wrapping through phase 0
    assert phase_mask(times, t0, 2.0, [(0.9, 0.1)]).tolist() == [True, False, False, False, True]
    assert phase_mask(times, t0, 2.0, [(0.2, 0.3), (0.7, 0.8)]).tolist() == [False, True, False, True, False]


def test_time_windows():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    assert window_mask(t, []).all()
    assert window_mask(t, [(5, 20)]).tolist() == [False, True, True, False]
    assert window_mask(t, [(0, 0), (25, 40)]).tolist() == [True, False, False, True]


def test_run_lengths_and_remaining():
    ok = np.array([[True, True, False, True, True, True], [False, False, False, False, False, False]])
    assert run_lengths(ok).tolist() == [[2, 1, 0, 3, 2, 1], [0] * 6]
    assert remaining_counts(ok).tolist() == [[5, 4, 3, 3, 2, 1], [0] * 6]
