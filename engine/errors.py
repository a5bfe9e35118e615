"""Why a run could not start: every door turns these into its own answer."""


class Busy(Exception):
    """Every slot is taken and the wait queue is full (or the wait ran out)."""

    retry_after = 1


class Unavailable(Exception):
    """Isolation can't be set up on this host, so nothing runs."""
