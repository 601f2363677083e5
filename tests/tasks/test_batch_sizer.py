"""BatchSizer: the size of the next automatic batch from the measured shot cycles (fed, no clock)."""

from __future__ import annotations

import math

import pytest

from tasks.engine import MAX_AUTO_BATCH, SERVER_TASK_RUN_RATE, SLOW_CYCLE, TARGET_BATCH_INTERVAL, BatchSizer


def test_the_first_batch_holds_one_shot() -> None:
    assert BatchSizer().next_size() == 1


def test_the_default_growth_reaches_the_maximum_within_six_batches() -> None:
    sizer = BatchSizer()
    sizes = []
    for _ in range(6):
        sizer.record(0.0)
        sizes.append(sizer.next_size())
    assert sizes == [1, 4, 16, 64, 256, MAX_AUTO_BATCH]


def test_the_target_interval_keeps_the_task_run_rate_well_under_the_server_rate() -> None:
    # two task runs per batch (compile, execute); the server's CPU shares the shots' cores
    assert 2 / TARGET_BATCH_INTERVAL <= SERVER_TASK_RUN_RATE / 5


@pytest.mark.parametrize("cycle", [SLOW_CYCLE, 0.8, 5.0])
def test_slow_shots_keep_one_shot_per_task(cycle: float) -> None:
    sizer = BatchSizer()
    for _ in range(50):
        sizer.record(cycle)
        assert sizer.next_size() == 1


def test_shots_just_faster_than_slow_share_task_runs_of_about_the_target() -> None:
    sizer = BatchSizer(growth=1000)
    sizer.next_size()
    sizer.record(0.4)
    assert sizer.next_size() == math.ceil(TARGET_BATCH_INTERVAL / 0.4)


def test_fast_shots_grow_by_doubling_up_to_the_rule() -> None:
    sizer = BatchSizer(0.2, max_size=1000, growth=2.0)
    sizes = []
    for _ in range(8):
        sizer.record(0.004)
        sizes.append(sizer.next_size())
    assert sizes == [1, 2, 4, 8, 16, 32, 50, 50]  # ceil(0.2 / 0.004) = 50


def test_zero_length_shots_reach_the_maximum() -> None:
    sizer = BatchSizer()
    for _ in range(20):
        sizer.record(0.0)
        size = sizer.next_size()
    assert size == MAX_AUTO_BATCH


def test_size_is_the_ceiling_of_target_over_mean_cycle() -> None:
    sizer = BatchSizer(0.2, growth=1000)
    assert sizer.next_size() == 1
    for duration in (0.02, 0.03):
        sizer.record(duration)
    assert sizer.mean == pytest.approx(0.025)
    assert sizer.next_size() == math.ceil(0.2 / 0.025)


def test_a_change_to_slow_shots_is_followed_within_one_window() -> None:
    sizer = BatchSizer(0.2, window=10)
    for _ in range(30):
        sizer.record(0.001)
        sizer.next_size()
    for n in range(1, 11):
        sizer.record(1.0)
        size = sizer.next_size()
        if n >= 2:  # mean >= 0.2 s once two of the ten are slow
            assert size == 1, (n, size)


def test_growth_is_bounded() -> None:
    sizer = BatchSizer(0.2, growth=1.5, max_size=1000)
    sizer.record(0.0001)
    assert [sizer.next_size() for _ in range(5)] == [1, 2, 3, 5, 8]


@pytest.mark.parametrize(
    "kwargs", [{"target_interval": 0}, {"slow_cycle": 0}, {"max_size": 0}, {"growth": 0.5}, {"window": 0}]
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BatchSizer(**kwargs)
