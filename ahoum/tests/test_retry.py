from ahoum.retry import backoff_seconds


def test_backoff_doubles_with_jitter_and_is_capped():
    first = [backoff_seconds(1, base_seconds=10, max_seconds=100) for _ in range(200)]
    third = [backoff_seconds(3, base_seconds=10, max_seconds=100) for _ in range(200)]
    late = [backoff_seconds(40, base_seconds=10, max_seconds=100) for _ in range(200)]

    assert all(8 <= delay <= 12 for delay in first)
    assert all(32 <= delay <= 48 for delay in third)
    assert all(80 <= delay <= 120 for delay in late)
    assert len({round(delay, 3) for delay in first}) > 1  # jittered, not in lockstep
