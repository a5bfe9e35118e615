import pytest

from playground.models import Snippet


def make_snippet(language="python", code="print('hi')", stdin="", title="") -> Snippet:
    """A plain factory: saved through the same path as the API."""
    return Snippet.objects.for_content(language, code, stdin, title)[0]


@pytest.fixture
def snippet(db):
    return make_snippet()
