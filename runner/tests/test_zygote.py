"""Runs forked from a zygote (sandbox/zygote.py)."""

from engine.backends.local import STARTS
from sandbox.pool import POOL


def test_a_python_run_is_forked_from_a_zygote(api, settings):
    settings.RUNNER_POOL_SIZE = 2
    api.run("python", "print(0)")
    POOL.settle()
    before = STARTS["zygote"]
    result = api.run("python", "import os, sys\nprint(os.getpid(), os.getcwd(), sys.argv, __name__)\nprint(open('/proc/self/mountinfo').read())\nprint(os.listdir('/proc'))")
    print(result)
    assert STARTS["zygote"] == before + 1
    assert result["status"] == "ok"
