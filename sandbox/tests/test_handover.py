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
