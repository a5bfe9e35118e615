"""The pages: the editor, share links, raw code, the embed page and embed.js."""

import json

import pytest
from django.contrib.admin.sites import site

from engine import languages
from playground.models import Snippet, content_id
from playground.tests.conftest import make_snippet


def page_config(response) -> dict:
    html = response.content.decode()
    start = html.index('id="page-config"')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


def test_the_editor_page_has_every_labelled_control(client, db):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for needle in (
        '<label for="language">Language</label>',
        'id="run"',
        ">Run</button>",
        ">Share</button>",
        '<label for="stdin">Input</label>',
        'role="log"',
        'aria-live="polite"',
        'id="output-label">Output',
    ):
        assert needle in html
    config = page_config(response)
    assert [lang["name"] for lang in config["languages"]] == languages.names()
    assert languages.names()[:4] == ["python", "javascript", "typescript", "bash"]
    assert all(lang["example"] for lang in config["languages"])
    assert config["snippet"] is None


def test_pages_refuse_to_be_framed(client, db, snippet):
    for path in ("/", f"/s/{snippet.id}", "/api/docs"):
        assert client.get(path)["X-Frame-Options"] == "DENY"


def test_a_share_link_opens_the_snippet_in_the_editor(client, snippet):
    response = client.get(f"/s/{snippet.id}")
    assert response.status_code == 200
    config = page_config(response)
    assert config["snippet"]["code"] == snippet.code
    assert config["snippet"]["language"] == "python"


def test_snippet_code_in_the_page_cannot_break_out_of_the_script(client, db):
    evil = Snippet.objects.for_content("javascript", "</script><script>alert(1)</script>")[0]
    html = client.get(f"/s/{evil.id}").content.decode()
    assert "</script><script>alert(1)" not in html
    assert page_config(client.get(f"/s/{evil.id}"))["snippet"]["code"] == evil.code


def test_an_unknown_share_link_is_404(client, db):
    assert client.get("/s/doesnotexist").status_code == 404


def test_raw_code_is_served_as_text(client, db):
    snippet = Snippet.objects.for_content("bash", "echo 'é'\n")[0]
    response = client.get(f"/s/{snippet.id}.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "echo 'é'\n"


def test_the_embed_page_may_be_framed_by_any_site(client, snippet):
    response = client.get(f"/embed/{snippet.id}")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "frame-ancestors *"
    assert "X-Frame-Options" not in response
    html = response.content.decode()
    assert ">Run</button>" in html and 'aria-label="Output"' in html
    assert 'id="language"' not in html and ">Share</button>" not in html


@pytest.mark.parametrize(
    "query, theme, readonly",
    [
        ("", None, False),
        ("?theme=dark", "dark", False),
        ("?theme=light&readonly=1", "light", True),
        ("?theme=pink", None, False),
    ],
)
def test_the_embed_page_takes_theme_and_readonly(client, snippet, query, theme, readonly):
    config = page_config(client.get(f"/embed/{snippet.id}{query}"))
    assert config["theme"] == theme
    assert config["readonly"] is readonly


def test_embed_js_is_served_for_any_site(client, db):
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"pre[data-run]" in response.content


def test_ids_are_short_and_derived_from_the_content():
    a = content_id("python", "print(1)", "", "")
    assert a == content_id("python", "print(1)", "", "")
    assert a != content_id("python", "print(1) ", "", "")
    assert len(a) == 11 and a.isalnum()


def test_snippets_are_in_the_admin():
    assert Snippet in site._registry


def test_the_admin_shows_a_saved_snippet_read_only(admin_client, db):
    snippet = make_snippet(code="print(40 + 2)")
    response = admin_client.get(f"/admin/playground/snippet/{snippet.id}/change/")
    assert response.status_code == 200
    assert b'name="code"' not in response.content  # read-only: shown, not editable
    assert snippet.code.encode() in response.content
