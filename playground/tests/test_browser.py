"""The pages in a real browser: Debian's Chromium driven by Playwright, against the live server.

Each test saves a screenshot under .build/screenshots/.
"""

import functools
import http.server
import json
import os
import re
import threading
from pathlib import Path

import pytest
from django.conf import settings

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from engine import languages

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(settings.BASE_DIR) / ".build" / "screenshots"
pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(
        tmp_path_factory.mktemp("browser"),
        RUNNER_UID_BASE=str(LIVE_UID_BASES[0]),
        RUNNER_CGROUP_PARENT=LIVE_CGROUP_PARENT,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory):
    """A documentation site on another port, hence another origin, serving pages we write."""
    root = tmp_path_factory.mktemp("site")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"))
    context.close()
    assert errors == []


def set_code(page, code: str) -> None:
    editor = page.get_by_role("textbox", name="Code")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def output(page):
    return page.get_by_role("log", name="Output")


@pytest.mark.parametrize("language", languages.names())
def test_each_language_runs_its_example(server, page, language):
    page.goto(server.url)
    page.get_by_label("Language").select_option(language)
    expect(page.get_by_role("textbox", name="Code")).to_contain_text("Hello")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("Hello, world!")
    expect(output(page)).to_contain_text("exit code 0")
    expect(page.get_by_role("button", name="Run")).to_be_visible()


def test_a_compile_error_shows_the_compilers_message_and_nothing_runs(server, page):
    page.goto(server.url)
    page.get_by_label("Language").select_option("c")
    expect(page.locator("#runtime")).to_contain_text("GCC 12")
    set_code(page, 'int main(void) {\n    puts("x")\n}\n')
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("main.c:2:")
    expect(output(page).locator(".pg-compile.pg-stderr")).to_contain_text("error:")
    expect(output(page).locator(".pg-badge-compile_error")).to_have_text("compile error")
    expect(output(page)).to_contain_text("nothing ran")
    page.screenshot(path=str(SHOTS / "test_compile_error.png"))


def test_python_shows_its_data_stack_and_draws_with_it(server, page):
    page.goto(server.url)
    expect(page.locator("#runtime")).to_contain_text("with numpy, pandas, matplotlib")
    set_code(page, "import numpy as np\nprint(np.arange(4).sum())\n")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("6")
    expect(output(page)).to_contain_text("exit code 0")


def test_typed_code_runs_with_ctrl_enter(server, page):
    page.goto(server.url)
    set_code(page, "for i in range(3):\n    print(i * 10)")
    page.keyboard.press("Control+Enter")
    expect(output(page)).to_contain_text("0\n10\n20")
    expect(output(page)).to_contain_text("exit code 0")
    expect(page.get_by_role("textbox", name="Code")).to_contain_text("for i in range(3):")


def test_highlighting_follows_the_code(server, page):
    page.goto(server.url)
    set_code(page, "def f():\n    return 'text'")
    keyword = page.locator(".cm-content span", has_text=re.compile(r"^def$"))
    expect(keyword).to_have_count(1)
    colour = keyword.evaluate("e => getComputedStyle(e).color")
    plain = page.locator(".cm-content span", has_text="'text'").evaluate("e => getComputedStyle(e).color")
    assert colour != plain


def test_input_is_the_programs_stdin(server, page):
    page.goto(server.url)
    set_code(page, "import sys\nprint(sys.stdin.read().upper())")
    page.get_by_label("Input", exact=True).fill("quiet words")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("QUIET WORDS")


def test_output_streams_and_input_is_typed_live(server, page):
    page.goto(server.url)
    set_code(
        page, "import time\nprint('first')\ntime.sleep(2)\nname = input('Name? ')\nprint(f'Hello, {name}!')"
    )
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("first")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()  # still running: the line came early
    expect(output(page)).to_contain_text("Name?", timeout=10_000)
    prompt = page.get_by_label("Program input")
    prompt.fill("Ada")
    prompt.press("Enter")
    expect(output(page)).to_contain_text("Hello, Ada!")
    expect(output(page)).to_contain_text("exit code 0")


def test_errors_show_in_stderr_with_the_exit_code(server, page):
    page.goto(server.url)
    set_code(page, "raise ValueError('broken')")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("exit code 1")
    stderr = page.locator(".pg-stderr")
    expect(stderr).to_contain_text("ValueError: broken")
    assert stderr.evaluate("e => getComputedStyle(e).color") != output(page).evaluate(
        "e => getComputedStyle(e).color"
    )


def test_stop_kills_the_run(server, page):
    page.goto(server.url)
    set_code(page, "import time\nprint('working')\ntime.sleep(30)")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("working")
    page.get_by_role("button", name="Stop").click()
    expect(output(page)).to_contain_text("stopped")
    expect(page.get_by_role("button", name="Run")).to_be_visible()


def test_truncated_output_gets_a_badge(server, page):
    page.goto(server.url)
    set_code(page, "while True:\n    print('x' * 200)")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".pg-badge", has_text="truncated")).to_be_visible(timeout=15_000)


def test_share_then_reopen_the_link(server, page):
    page.goto(server.url)
    page.get_by_label("Language").select_option("bash")
    set_code(page, "echo shared-$((40 + 2))")
    page.get_by_label("Input", exact=True).fill("some input")
    page.get_by_role("button", name="Share").click()
    link = page.get_by_label("Link")
    expect(link).to_have_value(re.compile(r"/s/\w{11}$"))
    expect(page.get_by_role("button", name="Copy link")).to_be_visible()
    expect(page.get_by_label("Embed")).to_have_value(re.compile(r"<iframe src=\".*/embed/\w{11}\""))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test_share_panel.png"))
    url = link.input_value()
    assert page.url == url
    page.goto(url)
    expect(page.get_by_label("Language")).to_have_value("bash")
    expect(page.get_by_role("textbox", name="Code")).to_contain_text("echo shared-$((40 + 2))")
    expect(page.get_by_label("Input", exact=True)).to_have_value("some input")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("shared-42")


def test_it_fits_a_phone(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.url)
    run = page.get_by_role("button", name="Run")
    expect(run).to_be_in_viewport()
    width = page.evaluate("document.documentElement.scrollWidth")
    run.click()
    expect(output(page)).to_contain_text("Hello, world!")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test_it_fits_a_phone.png"), full_page=True)
    context.close()
    assert width <= 390


def test_it_follows_the_dark_preference(server, browser):
    context = browser.new_context(color_scheme="dark", viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(server.url)
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("exit code 0")
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    editor = page.locator(".cm-editor").evaluate("e => getComputedStyle(e).backgroundColor")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test_it_follows_the_dark_preference.png"), full_page=True)
    context.close()
    assert luminance(body) < 0.2
    assert luminance(editor) < 0.3


def luminance(css: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def save_snippet(server, code, language="python") -> dict:
    status, _, body = server.request(
        "/api/snippets",
        json.dumps({"language": language, "code": code}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status in (200, 201)
    return json.loads(body)


def test_the_iframe_embed_runs_on_another_origin(server, other_origin, page):
    snippet = save_snippet(server, "print('from the frame')")
    root, site = other_origin
    (root / "frame.html").write_text(f"""<!doctype html><title>Docs</title><h1>A blog post</h1>
<iframe id="pg" src="{snippet["embedUrl"]}" style="width:100%;height:300px;border:0"></iframe>
<script>window.heights = []; addEventListener("message", (e) => {{
  if (e.data && e.data.type === "playground:height") window.heights.push(e.data.height); }});</script>""")
    page.goto(f"{site}/frame.html")
    frame = page.frame_locator("#pg")
    expect(frame.get_by_role("textbox", name="Code")).to_contain_text("from the frame")
    frame.get_by_role("button", name="Run").click()
    expect(frame.get_by_role("log", name="Output")).to_contain_text("exit code 0")
    expect(frame.get_by_role("log", name="Output")).to_contain_text("from the frame")
    page.wait_for_function("window.heights.length > 0")
    assert max(page.evaluate("window.heights")) > 100


def test_the_embed_page_takes_theme_and_readonly(server, page):
    snippet = save_snippet(server, "print('read only')")
    page.goto(f"{snippet['embedUrl']}?theme=dark&readonly=1")
    editor = page.get_by_role("textbox", name="Code")
    editor.click()
    page.keyboard.insert_text("# typed")
    expect(editor).not_to_contain_text("# typed")
    assert luminance(page.locator(".cm-editor").evaluate("e => getComputedStyle(e).backgroundColor")) < 0.3
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("log", name="Output")).to_contain_text("read only")


COMPILED = [lang for lang in languages.LANGUAGES if lang.compile]


@pytest.mark.parametrize("lang", COMPILED, ids=[lang.name for lang in COMPILED])
def test_the_embed_runs_a_compiled_language(server, page, lang):
    hello = next(sample for sample in lang.samples if sample.name == "hello")
    snippet = save_snippet(server, hello.code, lang.name)
    page.goto(snippet["embedUrl"])
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("log", name="Output")).to_contain_text("Hello, world!")
    expect(page.get_by_role("log", name="Output")).to_contain_text("compiled in")


def test_embed_js_makes_pre_blocks_runnable_on_another_origin(server, other_origin, page):
    root, site = other_origin
    (root / "docs.html").write_text(f"""<!doctype html><title>Docs</title>
<style>button {{ color: red; font-size: 40px; }} pre {{ background: yellow; }}</style>
<h1>Guide</h1>
<pre data-run="python">print(6 * 7)</pre>
<pre data-run="bash">echo "bash says hi"</pre>
<pre>not runnable</pre>
<button id="host-button">host button</button>
<script src="{server.url}/embed.js"></script>""")
    page.goto(f"{site}/docs.html")
    widgets = page.locator(".playground-widget")
    expect(widgets).to_have_count(2)
    expect(page.locator("pre", has_text="not runnable")).to_be_visible()
    first = widgets.nth(0)
    first.get_by_role("button", name="Run").click()
    expect(first.get_by_role("log", name="Output")).to_contain_text("42")
    expect(first.get_by_role("log", name="Output")).to_contain_text("exit code 0")
    second = widgets.nth(1)
    second.get_by_role("textbox", name="Code").fill('echo "edited"')
    second.get_by_role("button", name="Run").click()
    expect(second.get_by_role("log", name="Output")).to_contain_text("edited")
    # Its styles are its own, and the page's don't reach in.
    assert first.get_by_role("button", name="Run").evaluate("e => getComputedStyle(e).fontSize") != "40px"
    assert page.locator("#host-button").evaluate("e => getComputedStyle(e).fontSize") == "40px"


def test_without_websockets_the_page_falls_back_to_one_request(server, browser):
    context = browser.new_context()
    context.add_init_script("delete window.WebSocket")
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url)
    set_code(page, "print('over http')")
    page.get_by_role("button", name="Run").click()
    expect(output(page)).to_contain_text("over http")
    expect(output(page)).to_contain_text("exit code 0")
    context.close()
    assert any(url.endswith("/api/execute") for url in requests)


def test_the_tests_panel_runs_cases_and_marks_each(server, page):
    page.goto(server.url)
    page.get_by_label("Language").select_option("c")
    set_code(page, '#include <stdio.h>\nint main(void) { int n; scanf("%d", &n); printf("%d\\n", n * n); }\n')
    add = page.get_by_role("button", name="Add test")
    for given, expected in (("3", "9"), ("4", "16"), ("5", "24")):
        add.click()
        n = page.locator(".test").count()
        page.get_by_label(f"Test {n} input").fill(given)
        page.get_by_label(f"Test {n} expected output").fill(expected)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#tests-summary")).to_have_text("2 of 3 passed")
    rows = page.locator(".test")
    expect(rows.nth(0)).to_have_attribute("data-state", "passed")
    expect(rows.nth(1).locator(".test-status")).to_contain_text("passed")
    expect(rows.nth(2)).to_have_attribute("data-state", "wrong_answer")
    expect(rows.nth(2).locator(".test-diff")).to_have_text(
        'First difference at line 1: expected "24", got "25"'
    )
    expect(output(page)).to_contain_text("2 of 3 tests passed")
    expect(output(page).locator(".pg-badge-failed")).to_have_text("tests failed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test_tests_panel.png"))
    # A case removed is gone from the next run; the cases are kept with a shared snippet.
    page.get_by_role("button", name="Remove test 3").click()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#tests-summary")).to_have_text("2 of 2 passed")
    page.get_by_role("button", name="Share").click()
    expect(page.get_by_label("Link")).to_have_value(re.compile(r"/s/\w{11}$"))
    page.goto(page.get_by_label("Link").input_value())
    expect(page.get_by_label("Test 2 input")).to_have_value("4")
    expect(page.get_by_label("Test 2 expected output")).to_have_value("16")
    assert page.locator(".test").count() == 2


def test_a_compile_error_marks_every_case(server, page):
    page.goto(server.url)
    page.get_by_label("Language").select_option("c")
    set_code(page, "int main(void) { return nope; }\n")
    page.get_by_role("button", name="Add test").click()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator(".test")).to_have_attribute("data-state", "compile_error")
    expect(output(page).locator(".pg-compile.pg-stderr")).to_contain_text("nope")
    expect(page.locator("#tests-summary")).to_have_text("0 of 1 passed")


def test_the_embed_shows_a_snippets_cases_read_only_and_runs_them(server, page):
    status, _, body = server.request(
        "/api/snippets",
        json.dumps(
            {
                "language": "python",
                "code": "print(int(input()) + 1)",
                "tests": [
                    {"stdin": "1", "expectedOutput": "2"},
                    {"name": "big", "stdin": "41", "expectedOutput": "42"},
                ],
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status in (200, 201)
    page.goto(json.loads(body)["embedUrl"])
    stdin = page.get_by_label("Test 1 input")
    expect(stdin).to_have_value("1")
    expect(stdin).not_to_be_editable()
    expect(page.locator(".test-name").nth(1)).to_have_text("big")
    assert page.get_by_role("button", name="Add test").count() == 0
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#tests-summary")).to_have_text("2 of 2 passed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test_embed_tests.png"))


def test_without_websockets_the_tests_panel_grades_in_one_request(server, browser):
    context = browser.new_context()
    context.add_init_script("delete window.WebSocket")
    page = context.new_page()
    page.goto(server.url)
    set_code(page, "print(int(input()) * 3)")
    page.get_by_role("button", name="Add test").click()
    page.get_by_label("Test 1 input").fill("2")
    page.get_by_label("Test 1 expected output").fill("6")
    page.get_by_role("button", name="Add test").click()
    page.get_by_label("Test 2 input").fill("x")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#tests-summary")).to_have_text("1 of 2 passed")
    expect(page.locator(".test").nth(1)).to_have_attribute("data-state", "error")
    expect(page.locator(".test").nth(1).locator(".pg-stderr")).to_contain_text("ValueError")
    context.close()
