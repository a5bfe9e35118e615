"""Grading: each compare mode at its edges, the differences it reports, and verdicts from statuses."""

import pytest

from engine.grading import SHOWN, Difference, compare, judge


@pytest.mark.parametrize(
    "expected, got",
    [
        ("1\n2\n", "1\n2\n"),
        ("1\n2\n", "1\n2"),  # the last newline
        ("1\n2", "1 \n2\t\n\n\n"),  # trailing whitespace on a line, trailing empty lines
        ("a b\n", "a b\r\n"),  # a Windows line end is trailing whitespace
        ("", "\n\n"),
        ("", ""),
    ],
)
def test_lines_ignores_trailing_whitespace_and_trailing_empty_lines(expected, got):
    assert compare(expected, got) is None
    assert compare(got, expected) is None


@pytest.mark.parametrize(
    "expected, got, difference",
    [
        ("1\n2\n", "1\n3\n", Difference(2, "2", "3")),
        ("a b\n", "a  b\n", Difference(1, "a b", "a  b")),  # whitespace inside a line counts
        (" a\n", "a\n", Difference(1, " a", "a")),  # and leading whitespace
        ("1\n\n2\n", "1\n2\n", Difference(2, "", "2")),  # an empty line inside counts
        ("1\n2\n", "1\n", Difference(2, "2", None)),  # the output ended early
        ("1\n", "1\n2\n", Difference(2, None, "2")),  # the output went on
    ],
)
def test_lines_reports_the_first_differing_line(expected, got, difference):
    assert compare(expected, got, "lines") == difference


def test_exact_is_byte_for_byte():
    assert compare("1\n", "1\n", "exact") is None
    assert compare("1\n", "1", "exact") == Difference(2, "", None)
    assert compare("1", "1 ", "exact") == Difference(1, "1", "1 ")
    assert compare("a\r\n", "a\n", "exact") == Difference(1, "a\r", "a")


def test_tokens_takes_any_whitespace_layout():
    assert compare("1 2 3\n", "1\n2\t 3", "tokens") is None
    assert compare("", " \n\t", "tokens") is None
    assert compare("1 2 3", "1 2\n4", "tokens") == Difference(2, "3", "4", token=3)
    assert compare("1 2", "1", "tokens") == Difference(1, "2", None, token=2)
    assert compare("1", "1\n\n2", "tokens") == Difference(3, None, "2", token=2)
    assert compare("1.0", "1", "tokens") == Difference(1, "1.0", "1", token=1)  # words, not numbers


@pytest.mark.parametrize(
    "expected, got",
    [
        ("0.3333333333", "0.3333334"),  # absolute: 6.7e-8 apart
        ("1000000", "1000000.5"),  # relative: 5e-7 of the value
        ("1e3", "1000.0000001"),
        ("-0", "0"),
        (".5", "0.5"),
        ("+2", "2.0000001"),
        ("x 1.0 y", "x  1 \n y"),  # words around numbers, any layout
    ],
)
def test_numbers_are_equal_within_the_tolerance(expected, got):
    assert compare(expected, got, "numbers") is None


@pytest.mark.parametrize(
    "expected, got, tolerance, token",
    [
        ("0.5", "0.501", 1e-6, 1),
        ("1 2", "1 2.01", 1e-3, 2),
        ("1", "1x", 1e-6, 1),  # not a number: compared as a word
        ("nan", "nan", 1e-6, None),  # the same word
        ("nan", "NaN", 1e-6, 1),  # no number is NaN: only the same word
        ("1e999", "2e999", 1e-6, 1),  # beyond a float: only the same text
        ("1.5", "1.5", 0, None),  # tolerance 0: exactly the same value
        ("1.5", "1.50", 0, None),
        ("1.5", "1.5000001", 0, 1),
    ],
)
def test_numbers_differ_beyond_the_tolerance_and_words_differ_as_words(expected, got, tolerance, token):
    difference = compare(expected, got, "numbers", tolerance)
    assert (difference and difference.token) == token


def test_a_long_line_is_shown_cut():
    difference = compare("a" * 1000, "b" * 1000)
    assert difference.expected == "a" * SHOWN + "…" and difference.got == "b" * SHOWN + "…"
    assert difference.to_wire() == {"line": 1, "expected": difference.expected, "got": difference.got}
    assert compare("1 2", "1 3", "tokens").to_wire() == {"line": 1, "expected": "2", "got": "3", "token": 2}


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown compare mode 'fuzzy'"):
        compare("1", "1", "fuzzy")


@pytest.mark.parametrize(
    "status, stdout, expected, verdict",
    [
        ("ok", "42\n", "42", "passed"),
        ("ok", "41\n", "42", "wrong_answer"),
        ("ok", "anything", None, "passed"),  # no expected output: judged by the exit code alone
        ("error", "42\n", "42", "error"),  # the right output and a non-zero exit: an error
        ("error", "", None, "error"),
        ("timeout", "42\n", "42", "timeout"),
        ("memory", "", "42", "memory"),
        ("output_limit", "4242", "42", "output_limit"),
        ("killed", "", "42", "error"),
        ("compile_error", "", "42", "compile_error"),
    ],
)
def test_the_verdict_comes_from_how_the_run_ended_then_from_its_output(status, stdout, expected, verdict):
    got, difference = judge(status, stdout, expected)
    assert got == verdict
    assert (difference is not None) == (verdict == "wrong_answer")
