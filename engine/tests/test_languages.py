"""The registry: one valid file per language, and every language's conformance samples, cold, pooled
and (Python's) forked from a zygote."""

import re
import shutil
from pathlib import Path

import pytest

from engine import languages
from engine.backends.local import STARTS
from sandbox.pool import POOL

SAMPLES = [(lang.name, sample) for lang in languages.LANGUAGES for sample in lang.samples]
# Every sample cold and pooled, and forked from a zygote where its language's runs are.
STARTS_SAMPLES = [
    (start, name, sample)
    for start in ("cold", "warm", "zygote")
    for name, sample in SAMPLES
    if start != "zygote" or languages.get(name).run.zygote
]


@pytest.mark.parametrize(
    "start, name, sample", STARTS_SAMPLES, ids=[f"{n}-{s.name}-{start}" for start, n, s in STARTS_SAMPLES]
)
def test_every_sample_of_every_language_runs_as_its_file_says(api, name, sample, start, settings):
    settings.RUNNER_POOL_SIZE = 0 if start == "cold" else 2
    settings.RUNNER_ZYGOTE = start == "zygote"
    if sample.libraries and not settings.RUNNER_LIBRARIES:
        pytest.skip("RUNNER_LIBRARIES is off")
    if start != "cold":
        api.run("bash", "true")  # the pools fill behind the first run
        assert POOL.settle()
    before = STARTS[start]
    result = api.run(name, sample.code, stdin=sample.stdin, args=list(sample.args), files=dict(sample.files))
    if languages.get(name).pooled or start != "warm":
        assert STARTS[start] == before + 1
    exit_code = None if sample.signal or sample.status == "compile_error" else sample.exit_code
    assert (result["status"], result["exitCode"], result["signal"]) == (
        sample.status,
        exit_code,
        sample.signal,
    ), result
    if sample.stdout is not None:
        assert result["stdout"] == sample.stdout
    if sample.stderr is not None:
        assert sample.stderr in result["stderr"]
    lang = languages.get(name)
    if lang.compile is None:
        assert result["compile"] is None
    else:
        compiled = result["compile"]
        assert compiled["status"] == ("error" if sample.status == "compile_error" else "ok"), compiled
        assert compiled["duration"] > 0 and (compiled["exitCode"] != 0) == (sample.status == "compile_error")
    if sample.compile_stderr is not None:
        assert sample.compile_stderr in result["compile"]["stderr"]


BENCHED = [lang for lang in languages.LANGUAGES if lang.bench]


@pytest.mark.parametrize("lang", BENCHED, ids=[lang.name for lang in BENCHED])
def test_each_benchmark_program_prints_what_make_bench_expects(api, lang):
    assert api.run(lang.name, lang.bench.code)["stdout"] == "1\n"


def test_every_language_listed_by_the_api_has_its_file(api):
    listed = api.client.get("/api/runtimes").json()
    assert [r["language"] for r in listed] == [p.stem for p in sorted_files()]


def sorted_files() -> list[Path]:
    by_name = {p.stem: p for p in languages.DIRECTORY.glob("*.toml")}
    return [by_name[lang.name] for lang in languages.LANGUAGES]


def test_each_sample_set_covers_the_conformance_cases():
    wanted = {"hello", "stdin", "args", "extra file", "exit code", "error"}
    for lang in languages.LANGUAGES:
        assert wanted <= {s.name for s in lang.samples}, lang.name


def copy_registry(tmp_path: Path) -> Path:
    directory = tmp_path / "languages"
    shutil.copytree(languages.DIRECTORY, directory)
    return directory


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.replace('filename = "main.py"\n', ""),
            "languages/python.toml: field 'filename': Field required",
        ),
        (lambda t: "surprise = 1\n" + t, "languages/python.toml: field 'surprise': Extra inputs"),
        (lambda t: t.replace('argv = ["/usr/bin/python3", "main.py"]', "argv = []"), "field 'run.argv'"),
        (lambda t: t.replace("pattern = 'Python (\\S+)'", "pattern = 'Python'"), "field 'version.pattern'"),
        (lambda t: t.replace('aliases = ["py", "python3"]', 'aliases = ["py", "js"]'), "'js' is given twice"),
        (lambda t: t.replace('name = "python"', 'name = "snake"'), "must be the file's name"),
        (lambda t: t.replace("[run]", "[run"), "not valid TOML"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_field(tmp_path, change, message):
    directory = copy_registry(tmp_path)
    path = directory / "python.toml"
    path.write_text(change(path.read_text()))
    with pytest.raises(languages.RegistryError, match=re.escape(message)):
        languages.load(directory)


def test_adding_an_interpreted_language_is_one_file(tmp_path):
    directory = copy_registry(tmp_path)
    text = (directory / "bash.toml").read_text()
    text = text.replace('name = "bash"', 'name = "dash"').replace('aliases = ["sh"]', "aliases = []")
    (directory / "dash.toml").write_text(text)
    assert "dash" in [lang.name for lang in languages.load(directory)]


def test_the_docs_list_every_language_from_the_registry():
    docs = (languages.DIRECTORY.parent / "docs" / "languages.md").read_text()
    assert languages.table() in docs, "run: python -m engine.languages > docs/languages.md"


def test_every_language_has_its_editor_mode():
    """The editor knows every mode a language file names (frontend/src/codemirror.js's MODES)."""
    import re

    source = (languages.DIRECTORY.parent / "frontend" / "src" / "codemirror.js").read_text()
    modes = set(
        re.findall(r"^  (\w+): async \(\) =>", source.split("const MODES = {", 1)[1].split("};", 1)[0], re.M)
    )
    assert {lang.editor for lang in languages.LANGUAGES} <= modes
