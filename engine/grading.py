"""Grading: a test case's output judged against what it should be, as online judges judge it.

No Django and no sandbox: given how a case's run ended and what the case expects, a verdict and,
for a wrong answer, where the output first differs. Running the cases is the executor's work;
this only judges them. The compare modes:

  lines    (the default) each line without its trailing whitespace, and no trailing empty
           lines: "1 \\n2\\n\\n" is "1\\n2" (Judge0 compares so)
  exact    byte for byte (as text): "1\\n" is not "1"
  tokens   the same words in the same order, in any whitespace layout: "1 2" is "1\\n2"
  numbers  as tokens, and two tokens that are both numbers are equal within the tolerance,
           absolute or relative: with 1e-6, 0.3333333 is 1/3 and 1000000.1 is 1000000
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal, get_args

from .results import Verdict

Compare = Literal["lines", "exact", "tokens", "numbers"]
COMPARES: tuple[str, ...] = get_args(Compare)
DEFAULT_TOLERANCE = 1e-6
SHOWN = 200  # characters of a differing line or token shown in a difference

# How a run's status becomes a case's verdict when the output is not what decides it.
_ENDED = {
    "timeout": "timeout",
    "memory": "memory",
    "output_limit": "output_limit",
    "error": "error",
    "killed": "error",
    "compile_error": "compile_error",
}
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Difference:
    """Where the output first differs from the expected one: the 1-based line of the output (of
    the expected output, when the output ended before it) and, for tokens and numbers, the
    1-based token. None for a side that has no such line or token."""

    line: int
    expected: str | None
    got: str | None
    token: int | None = None

    def to_wire(self) -> dict:
        wire = {"line": self.line, "expected": self.expected, "got": self.got}
        if self.token is not None:
            wire["token"] = self.token
        return wire


def compare(
    expected: str, got: str, mode: Compare = "lines", tolerance: float = DEFAULT_TOLERANCE
) -> Difference | None:
    """None when `got` is the expected output under this mode; else where it first differs."""
    if mode == "exact":
        return _lines(expected.split("\n"), got.split("\n"))
    if mode == "lines":
        return _lines(_trimmed(expected), _trimmed(got))
    if mode == "tokens":
        return _tokens(expected, got, str.__eq__)
    if mode == "numbers":
        return _tokens(expected, got, lambda a, b: _same_numbers(a, b, tolerance))
    raise ValueError(f"unknown compare mode {mode!r}")


def judge(
    status: str,
    stdout: str,
    expected: str | None,
    mode: Compare = "lines",
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Verdict, Difference | None]:
    """A case's verdict from its run's status and output. A run that did not end well (an exit
    code other than 0, a signal, a limit) is judged by how it ended, whatever it printed; one that
    did is judged by its output, or passes when the case expects none."""
    if status != "ok":
        return _ENDED[status], None
    if expected is None:
        return "passed", None
    difference = compare(expected, stdout, mode, tolerance)
    return ("passed", None) if difference is None else ("wrong_answer", difference)


def _trimmed(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _lines(expected: list[str], got: list[str]) -> Difference | None:
    i = _first_difference(expected, got, str.__eq__)
    if i is None:
        return None
    return Difference(i + 1, _shown(_at(expected, i)), _shown(_at(got, i)))


def _tokens(expected: str, got: str, same) -> Difference | None:
    wanted, found = _words(expected), _words(got)
    i = _first_difference(wanted, found, lambda e, g: same(e[0], g[0]))
    if i is None:
        return None
    e, g = _at(wanted, i), _at(found, i)
    return Difference((g or e)[1], _shown(e and e[0]), _shown(g and g[0]), token=i + 1)


def _first_difference(expected: list, got: list, same) -> int | None:
    """Where two sequences first differ (one ending before the other does too), or None."""
    for i, (e, g) in enumerate(zip_longest(expected, got)):
        if e is None or g is None or not same(e, g):
            return i
    return None


def _at(items: list, i: int):
    return items[i] if i < len(items) else None


def _words(text: str) -> list[tuple[str, int]]:
    """Each whitespace-separated word, with its 1-based line."""
    return [(word, n) for n, line in enumerate(text.split("\n"), 1) for word in line.split()]


def _same_numbers(a: str, b: str, tolerance: float) -> bool:
    if a == b:
        return True
    if not (_NUMBER.fullmatch(a) and _NUMBER.fullmatch(b)):
        return False
    x, y = float(a), float(b)
    if not (math.isfinite(x) and math.isfinite(y)):
        return False  # (beyond a float's range: only the same text is the same number)
    gap = abs(x - y)
    return gap <= tolerance or gap <= tolerance * max(abs(x), abs(y))


def _shown(text: str | None) -> str | None:
    if text is None or len(text) <= SHOWN:
        return text
    return text[:SHOWN] + "…"
