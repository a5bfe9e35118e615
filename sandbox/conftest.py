import pytest


@pytest.fixture(autouse=True)
def _nothing_left(nothing_left_behind):
    """Every test here ends with no sandbox process and no cgroup left on the host."""
