"""GET /api/runtimes: the languages, with versions read from the real interpreters."""

import os
import re
import subprocess

import pytest
from django.conf import settings


def real_version(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_it_lists_every_language_with_aliases(client):
    response = client.get("/api/runtimes")
    assert response.status_code == 200
    listed = {r["language"]: r for r in response.json()}
    assert list(listed) == [
        *("python", "javascript", "typescript", "bash", "ruby", "php", "lua", "perl", "r"),
        *("c", "cpp", "java", "go", "rust"),
    ]
    assert listed["python"]["aliases"] == ["py", "python3"]
    assert listed["javascript"]["aliases"] == ["js", "node"]
    assert listed["typescript"]["aliases"] == ["ts"]
    assert listed["bash"]["aliases"] == ["sh"]
    assert listed["ruby"]["aliases"] == ["rb"]
    assert listed["perl"]["aliases"] == ["pl"]
    assert listed["r"]["aliases"] == ["rscript"]
    assert listed["cpp"]["aliases"] == ["c++"]
    assert listed["go"]["aliases"] == ["golang"]
    assert listed["rust"]["aliases"] == ["rs"]
    fields = {"language", "version", "aliases", "runtime", "available", "compiled", "libraries"}
    assert all(set(r) == fields for r in response.json())
    assert [r["language"] for r in response.json() if r["compiled"]] == ["c", "cpp", "java", "go", "rust"]
    assert all(r["available"] for r in response.json())


def test_the_operator_chooses_the_languages_served(api, client, settings):
    settings.RUNNER_LANGUAGES = "py, bash"  # names or aliases
    assert [r["language"] for r in client.get("/api/runtimes").json()] == ["python", "bash"]
    refused = api.execute({"language": "ruby", "code": "puts 1"})
    assert refused.status_code == 404
    assert refused.json()["languages"] == ["python", "bash"]
    assert api.run("bash", "echo served")["stdout"] == "served\n"
    page = client.get("/").content.decode()
    assert '"name": "bash"' in page and '"name": "ruby"' not in page


def test_an_unknown_language_in_the_setting_stops_the_server(settings):
    from django.core.exceptions import ImproperlyConfigured

    from runner import conf

    settings.RUNNER_LANGUAGES = "python, cobol"
    with pytest.raises(ImproperlyConfigured, match="RUNNER_LANGUAGES: unknown language 'cobol'"):
        conf.get()


def test_a_language_whose_toolchain_is_missing_is_listed_unavailable_and_never_run(
    api, client, settings, tmp_path
):
    """A tools directory without esbuild: TypeScript can't run, and says why; the rest runs."""
    real = settings.RUNNER_TOOLS_DIR
    for name in os.listdir(real):
        if name != "esbuild":
            os.symlink(os.path.join(real, name), tmp_path / name)
    settings.RUNNER_TOOLS_DIR = str(tmp_path)
    listed = {r["language"]: r for r in client.get("/api/runtimes").json()}
    assert listed["typescript"]["available"] is False
    assert f"{tmp_path}/esbuild" in listed["typescript"]["reason"]
    assert listed["python"]["available"] is True
    refused = api.execute({"language": "ts", "code": "console.log(1)"})
    assert refused.status_code == 503
    assert "TypeScript is not available on this server: its toolchain is missing" in refused.json()["error"]
    assert api.run("python", "print('still')")["stdout"] == "still\n"
    assert '"name": "typescript"' not in client.get("/").content.decode()


def test_versions_are_the_real_interpreters(client):
    listed = {r["language"]: r for r in client.get("/api/runtimes").json()}
    python = real_version(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"])
    node = real_version(["/usr/bin/node", "-p", "process.versions.node"])
    bash = real_version(
        ["/bin/bash", "-c", 'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"']
    )
    esbuild = real_version([f"{settings.RUNNER_TOOLS_DIR}/esbuild", "--version"])
    assert listed["python"]["version"] == python
    assert listed["javascript"]["version"] == node
    assert listed["bash"]["version"] == bash
    assert listed["typescript"]["version"] == esbuild
    assert listed["ruby"]["version"] == real_version(["/usr/bin/ruby", "-e", "print RUBY_VERSION"])
    assert listed["php"]["version"] == real_version(["/usr/bin/php", "-n", "-r", "echo PHP_VERSION;"])
    assert listed["perl"]["version"] == real_version(["/usr/bin/perl", "-e", "printf '%vd', $^V"])
    assert listed["lua"]["runtime"].startswith("Lua 5.4.")
    assert listed["typescript"]["runtime"] == f"esbuild {esbuild} + Node.js {node}"
    assert listed["python"]["runtime"] == f"CPython {python}"


def test_the_listed_version_is_what_runs_in_the_sandbox(api, client):
    listed = {r["language"]: r for r in client.get("/api/runtimes").json()}
    inside = api.run("python", "import platform; print(platform.python_version())")["stdout"].strip()
    node = api.run("javascript", "console.log(process.versions.node)")["stdout"].strip()
    assert inside == listed["python"]["version"]
    assert node == listed["javascript"]["version"]


def test_python_lists_its_data_stack_with_versions(client):
    listed = {r["language"]: r for r in client.get("/api/runtimes").json()}
    names = [lib["name"] for lib in listed["python"]["libraries"]]
    assert names == ["numpy", "pandas", "matplotlib", "scipy", "scikit-learn"]
    assert all(re.fullmatch(r"\d+(\.\d+)+\S*", lib["version"]) for lib in listed["python"]["libraries"])
    assert all(r["libraries"] == [] for name, r in listed.items() if name != "python")
    page = client.get("/").content.decode()
    assert f"numpy {listed['python']['libraries'][0]['version']}" in page


def test_with_libraries_off_none_is_listed_or_importable(api, client, settings):
    settings.RUNNER_LIBRARIES = False
    listed = {r["language"]: r for r in client.get("/api/runtimes").json()}
    assert listed["python"]["libraries"] == []
    result = api.run("python", "import numpy")
    assert result["status"] == "error" and "ModuleNotFoundError: No module named 'numpy'" in result["stderr"]
    assert api.run("python", "import json, sqlite3; print('stdlib')")["stdout"] == "stdlib\n"
    settings.RUNNER_LIBRARIES = True
    assert api.run("python", "import numpy; print(numpy.__name__)")["stdout"] == "numpy\n"
