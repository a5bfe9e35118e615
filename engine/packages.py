"""The Debian packages the served languages need, for the Makefile: `python3 engine/packages.py`.

Only the standard library, so it runs before anything is installed. It reads the same files as
engine.languages: RUNNER_LANGUAGES (names as the files are named) picks the languages, and each
one's libraries (Python's data stack) come too unless RUNNER_LIBRARIES is off.
"""

import os
import pathlib
import tomllib

DIRECTORY = pathlib.Path(__file__).resolve().parent.parent / "languages"
OFF = {"0", "off", "false", "no"}


def packages(chosen: set[str], libraries: bool) -> list[str]:
    found = set()
    for path in DIRECTORY.glob("*.toml"):
        if chosen and path.stem not in chosen:
            continue
        with open(path, "rb") as f:
            data = tomllib.load(f)
        found.update(data.get("packages", []))
        if libraries:
            found.update(lib["debian"] for lib in data.get("libraries", {}).get("packages", []))
    return sorted(found)


if __name__ == "__main__":
    chosen = {n.strip() for n in os.environ.get("RUNNER_LANGUAGES", "").split(",") if n.strip()}
    libraries = os.environ.get("RUNNER_LIBRARIES", "on").strip().lower() not in OFF
    print(" ".join(packages(chosen, libraries)))
