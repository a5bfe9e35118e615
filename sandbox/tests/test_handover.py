"""The hand-over: one golden vector, encoded by the server and decoded by all three loaders alike.

Each loader gets the vector on stdin in an empty directory, outside any sandbox, and must
then behave exactly as its program started cold in a directory laid out by hand.
"""

import os
import subprocess
from pathlib import Path

import pytest

from sandbox import handover
from sandbox.tests.make_handover_golden import ARGS, FILES, PATH, STDIN

RUNTIMES = Path(__file__).resolve().parent.parent.parent / "runtimes"
TOOLS = Path(os.environ.get("RUNNER_TOOLS_DIR", "/opt/code-playground"))
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
LOADERS = {
    "python": (
        ["/usr/bin/python3", str(RUNTIMES / "pool-loader.py"), "main.py"],
        ["/usr/bin/python3", "main.py"],
    ),
    "javascript": (
        ["/usr/bin/node", str(RUNTIMES / "pool-loader.cjs"), "wait", "main.js"],
        ["/usr/bin/node", "main.js"],
    ),
    "bash": ([str(TOOLS / "pool-exec"), "/bin/bash", "main.sh"], ["/bin/bash", "main.sh"]),
}


def test_the_server_encodes_the_golden_vector():
    assert handover.encode(FILES, ARGS) + STDIN == PATH.read_bytes()


def test_the_golden_vector_decodes_to_what_was_encoded():
    assert handover.decode(PATH.read_bytes()) == (FILES, ARGS, STDIN)


def test_a_cut_hand_over_is_refused():
    with pytest.raises(ValueError):
        handover.decode(PATH.read_bytes()[:40])


def lay_out(directory: Path) -> None:
    for name, content in FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)


@pytest.mark.parametrize("language", LOADERS)
def test_each_loader_decodes_the_golden_vector_as_a_cold_run_sees_its_files(language, tmp_path):
    loader, cold = LOADERS[language]
    handed, laid = tmp_path / "handed", tmp_path / "laid"
    handed.mkdir()
    laid.mkdir()
    lay_out(laid)
    expected = subprocess.run([*cold, *ARGS], cwd=laid, env=ENV, input=STDIN, capture_output=True, timeout=30)
    got = subprocess.run(
        loader, cwd=handed, env=ENV, input=PATH.read_bytes(), capture_output=True, timeout=30
    )
    assert expected.returncode == 0, expected.stderr
    assert (got.returncode, got.stderr) == (0, b"")
    assert got.stdout == expected.stdout
    assert "ümlaut ✓" in got.stdout.decode() and "nested" in got.stdout.decode()
    # Every file arrived, with its bytes, and nothing else was written.
    written = {str(p.relative_to(handed)): p.read_bytes() for p in handed.rglob("*") if p.is_file()}
    assert written == FILES


def test_pool_exec_runs_both_stages_of_a_compiled_language_from_two_hand_overs(tmp_path):
    """A compiled language's waiting sandbox: the compile stage's pool-exec --null-stdin takes the
    files and the compiler's command line, and gives the compiler /dev/null, so the second
    hand-over and the program's input stay on stdin for the run stage's pool-exec."""
    pool_exec = str(TOOLS / "pool-exec")
    compile = ["/bin/sh", "-c", 'cat; cp main.c built; echo compiled "$@"', "sh", "-O2"]
    stdin = handover.encode({"main.c": b"int main;"}, compile) + handover.encode({}, ["/bin/cat", "-"])
    stdin += b"the program's input\n"
    with open(tmp_path / "stdin", "wb") as f:
        f.write(stdin)
    with open(tmp_path / "stdin", "rb") as f:  # one file offset, shared by both, as a pipe would be
        first = subprocess.run(
            [pool_exec, "--null-stdin"], cwd=tmp_path, env=ENV, stdin=f, capture_output=True
        )
        second = subprocess.run([pool_exec], cwd=tmp_path, env=ENV, stdin=f, capture_output=True)
    assert (first.returncode, first.stdout, first.stderr) == (0, b"compiled -O2\n", b"")
    assert (tmp_path / "built").read_bytes() == b"int main;"
    assert (second.returncode, second.stdout, second.stderr) == (0, b"the program's input\n", b"")


def test_pool_exec_refuses_a_hand_over_that_names_no_program(tmp_path):
    got = subprocess.run(
        [str(TOOLS / "pool-exec")], cwd=tmp_path, env=ENV, input=handover.encode({}, []), capture_output=True
    )
    assert got.returncode != 0 and b"no program to run" in got.stderr
