"""Isolation only: one fresh bubblewrap sandbox per run, supervised until nothing of it is left.

Knows nothing of Django, HTTP, the database or the engine (a test says so). Its public
surface: a BoxSpec and its Limits, a Sandbox to feed, read, kill and wait for, and the
Outcome it reports; the probe, which says whether this host can isolate at all; and the
pool, a faster way to obtain a sandbox.
"""

from .box import Sandbox
from .spec import BoxSpec, Host, Limits, Outcome, SandboxError

__all__ = ["BoxSpec", "Host", "Limits", "Outcome", "Sandbox", "SandboxError"]
