"""The hand-over: what a waiting sandbox's loader reads first on stdin, the run's files and arguments.

An 8-byte big-endian length, then: a 4-byte file count and, per file, a 4-byte name
length, the UTF-8 name, an 8-byte content length and the content; then a 4-byte
argument count and, per argument, a 4-byte length and the UTF-8 argument. Plain
lengths, so the three decoders (runtimes/pool-loader.py, pool-loader.cjs, pool-exec.c)
parse it with nothing to import. One golden vector (sandbox/tests/handover-golden.bin)
is read by the tests of all four.
"""

from __future__ import annotations


def encode(files: dict[str, bytes], args: list[str]) -> bytes:
    parts = [len(files).to_bytes(4, "big")]
    for name, content in files.items():
        encoded = name.encode()
        parts += [len(encoded).to_bytes(4, "big"), encoded, len(content).to_bytes(8, "big"), content]
    parts.append(len(args).to_bytes(4, "big"))
    for arg in args:
        encoded = arg.encode()
        parts += [len(encoded).to_bytes(4, "big"), encoded]
    body = b"".join(parts)
    return len(body).to_bytes(8, "big") + body


def decode(message: bytes) -> tuple[dict[str, bytes], list[str], bytes]:
    """The files, the arguments, and what follows the hand-over (the program's stdin)."""
    size = int.from_bytes(message[:8], "big")
    body, rest = memoryview(message)[8 : 8 + size], message[8 + size :]
    if len(body) != size:
        raise ValueError("the hand-over is cut short")
    at = 0

    def number(width: int) -> int:
        nonlocal at
        at += width
        return int.from_bytes(body[at - width : at], "big")

    def chunk(width: int) -> bytes:
        nonlocal at
        n = number(width)
        at += n
        return bytes(body[at - n : at])

    files = {}
    for _ in range(number(4)):
        name = chunk(4).decode()
        files[name] = chunk(8)
    args = [chunk(4).decode() for _ in range(number(4))]
    return files, args, rest
