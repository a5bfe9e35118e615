"""The layers: sandbox/ and engine/ import nothing of Django, the doors, the models or the site."""

import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent.parent
FORBIDDEN = ("django", "channels", "daphne", "runner", "playground")


def modules(package: str) -> list[str]:
    names = []
    for path in sorted((BASE / package).glob("**/*.py")):
        parts = path.relative_to(BASE).with_suffix("").parts
        if "tests" in parts or parts[-1] == "conftest":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_sandbox_and_engine_import_with_django_made_unimportable():
    names = modules("sandbox") + modules("engine")
    assert "engine.backends.local" in names and "sandbox.pool" in names
    script = (
        "import sys\n"
        f"for name in {FORBIDDEN!r}:\n"
        "    sys.modules[name] = None\n"
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} and sys.modules[m] is not None)\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=BASE, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_every_bubblewrap_flag_is_built_inside_sandbox():
    """Nothing outside sandbox/ spells a bwrap option."""
    flags = ("--unshare-", "--ro-bind", "--seccomp", "--die-with-parent", "--as-pid-1")
    found = []
    for path in BASE.glob("**/*.py"):
        rel = path.relative_to(BASE)
        if rel.parts[0] in ("sandbox", ".venv", "node_modules") or "tests" in rel.parts:
            continue
        text = path.read_text()
        found += [f"{rel}: {flag}" for flag in flags if f'"{flag}' in text]
    assert not found


def test_no_module_is_over_about_450_lines():
    long = []
    for package in ("sandbox", "engine", "runner", "playground"):
        for path in (BASE / package).glob("**/*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            lines = len(path.read_text().splitlines())
            if lines > 460:
                long.append(f"{path.relative_to(BASE)}: {lines}")
    assert not long
