"""Settings helpers: zero config works, and a bad value fails loudly."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from playground.settings import env_bool, env_float, env_int


def test_unset_values_take_the_default(monkeypatch):
    monkeypatch.delenv("PG_TEST_VALUE", raising=False)
    assert env_int("PG_TEST_VALUE", 7) == 7
    assert env_bool("PG_TEST_VALUE", True) is True
    assert env_float("PG_TEST_VALUE", 1.5) == 1.5


@pytest.mark.parametrize(
    "raw, expected", [("1", True), ("true", True), ("YES", True), ("off", False), ("0", False)]
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("PG_TEST_VALUE", raw)
    assert env_bool("PG_TEST_VALUE", not expected) is expected


@pytest.mark.parametrize(
    "helper, raw",
    [
        (env_bool, "maybe"),
        (env_int, "ten"),
        (env_int, "1.5"),
        (env_int, "-1"),
        (env_float, "fast"),
        (env_float, "-2"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, helper, raw):
    monkeypatch.setenv("PG_TEST_VALUE", raw)
    with pytest.raises(ImproperlyConfigured, match="PG_TEST_VALUE"):
        helper("PG_TEST_VALUE", 1)
