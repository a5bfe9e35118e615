"""A pre-warmed Python sandbox's first program: waits for one run on stdin, then becomes it.

    python3 pool-loader.py main.py    # then runs main.py as __main__
    python3 pool-loader.py --zygote FILTER_FD main.py
                                      # a zygote: each run is a fork (runtimes/zygote.c)

The server writes one hand-over (sandbox/handover.py): an 8-byte big-endian
length, then that many bytes holding the files and the arguments. The loader reads
exactly that much with os.read, so the rest of stdin is left for the program. EOF on
stdin before a run means the server is gone: exit quietly. Each sandbox serves one run
only, and the server destroys it afterwards.

It leaves nothing in sys.modules that `python3 main.py` would not have imported by itself,
and imports nothing slow (json or signal would cost milliseconds at hand-over); the two
builtin modules it ends the run with are imported while it waits, then unlisted.

What the interpreter holds while it waits is frozen (gc.freeze), as pre-forking servers do:
the run's collections, the last one at its end included, look at the run's own objects only.
In a process forked from a zygote, a collection of everything would also copy every page the
zygote's objects are on (2 ms of a run, measured: bench/NOTES.md). The objects are the
interpreter's own and stay alive; gc.get_freeze_count() counts them, and gc.get_objects()
and gc.get_referrers() leave them out.
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
    """Write the run's files into the working directory; return its arguments."""
    data = memoryview(_read_exact(int.from_bytes(_read_exact(8), "big")))
    at = 0

    def number(width):
        nonlocal at
        at += width
        return int.from_bytes(data[at - width : at], "big")

    def chunk(width):
        nonlocal at
        size = number(width)
        at += size
        return data[at - size : at]

    for _ in range(number(4)):
        name = str(chunk(4), "utf-8")
        content = chunk(8)
        folder = os.path.dirname(name)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(name, "wb") as f:
            f.write(content)
    return [str(chunk(4), "utf-8") for _ in range(number(4))]


def _import_unlisted(*names):
    """Modules for the loader's own use, not left in sys.modules: `python3 main.py` has not
    imported them. (Their state is the interpreter's, so a program's own import shares it.)"""
    modules = []
    for name in names:
        listed = name in sys.modules
        modules.append(__import__(name))
        if not listed:
            del sys.modules[name]
    return modules


def _run_python(main, args, atexit, gc):
    import builtins

    # This module's globals are about to become the program's: keep what we need as locals.
    system, exit_now, collect, exit_status = sys, os._exit, gc.collect, _exit_status

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
    status = 0
    try:
        exec(code, namespace)
    except SystemExit as e:
        status = exit_status(e.code, system.stderr)
    except BaseException as e:
        # The traceback starts at the user's file, as it would without this loader.
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        system.excepthook(type(e), e.with_traceback(tb), tb)
        status = 1
    # The interpreter's shutdown, as the program can observe it: non-daemon threads are
    # waited for, atexit handlers run, what __main__ held is released (its __del__ methods
    # run, its open files are flushed), then stdout and stderr are flushed. The rest of a
    # normal exit (tearing every module down) takes milliseconds and shows nothing, so
    # the process ends there.
    threading = system.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit._run_exitfuncs()
    namespace.clear()
    collect()
    for stream in (system.stdout, system.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            status = status or 120  # as CPython does when stdout can't be flushed at exit
    exit_now(status)


def _exit_status(code, stderr):
    """What `python3 main.py` exits with after an uncaught SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=stderr, flush=True)
    except Exception:
        pass
    return 1


def _serve(filter_fd):
    """A zygote's loop, in _zygote.serve(): it returns in each run's own process only, with
    that run's fds 0, 1 and 2, in fresh namespaces, under the run's seccomp filter."""
    import _imp

    program = b""
    while chunk := os.read(filter_fd, 65536):
        program += chunk
    os.close(filter_fd)

    class Spec:  # what _imp needs to load an extension from a file
        name, origin = "_zygote", "/opt/_zygote.so"

    zygote = _imp.create_dynamic(Spec)
    del sys.modules["_zygote"]
    zygote.serve(0, program)
    # A fresh seed, should anything the zygote holds have one (it imports no random itself).
    generator = sys.modules.get("random")
    if generator is not None:
        generator.seed()


if __name__ == "__main__":
    # While the sandbox waits: the interpreter's first compile() sets up the AST types (a
    # millisecond or more; it imports nothing and leaves nothing in __main__), the modules
    # the loader ends the run with are imported, and what the interpreter holds is frozen.
    compile(b"", "<pool>", "exec")
    modules = _import_unlisted("atexit", "gc")
    modules[1].freeze()
    if sys.argv[1] == "--zygote":
        _serve(int(sys.argv[2]))
        del sys.argv[1:3]
    _run_python(sys.argv[1], _take_run(), *modules)
