"""A pre-warmed sandbox's first program: waits for one run on stdin, then becomes it.

    python3 pool-loader.py main.py                  # then runs main.py as __main__
    python3 pool-loader.py --exec /bin/bash main.sh  # then execs bash main.sh

The server writes an 8-byte big-endian length and that many bytes of JSON,
{"files": {name: content}, "args": [...]}, then the program's own stdin. The loader
reads exactly that much with os.read, so the rest of stdin is left for the program.
EOF on stdin before a run means the server is gone: exit quietly. Each sandbox serves
one run only, and the server destroys it afterwards.
"""

import os
import sys


def _read_exact(n):
    chunks = []
    while n:
        chunk = os.read(0, n)
        if not chunk:
            os._exit(0)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _take_run():
    import json

    size = int.from_bytes(_read_exact(8), "big")
    run = json.loads(_read_exact(size))
    for name, content in run["files"].items():
        folder = os.path.dirname(name)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(name, "wb") as f:
            f.write(content.encode())
    return run["args"]


def _run_python(main, args):
    import builtins

    system = sys  # this module's globals are about to become the program's: keep what we need

    path = os.path.abspath(main)
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    sys.argv = [main, *args]
    sys.path[0] = os.path.dirname(path)
    module = sys.modules["__main__"]
    # A clean __main__, as for `python3 main.py`: nothing of this loader is left in it.
    namespace = module.__dict__
    namespace.clear()
    namespace.update(
        __name__="__main__", __doc__=None, __package__=None, __loader__=None, __spec__=None,
        __builtins__=builtins, __file__=path, __cached__=None,
    )  # fmt: skip
    try:
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as e:
        # The traceback starts at the user's file, as it would without this loader.
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        system.excepthook(type(e), e.with_traceback(tb), tb)
        system.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "--exec":
        import signal

        program = sys.argv[2:]
        args = _take_run()
        # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across
        # exec: give the program the defaults it would have had, started cold.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        os.execv(program[0], [*program, *args])
    else:
        _run_python(sys.argv[1], _take_run())
