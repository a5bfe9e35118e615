"""Writes handover-golden.bin, the one test vector every hand-over decoder reads.

    python -m sandbox.tests.make_handover_golden

Run it after a deliberate change of the format, never to make a test pass."""

from pathlib import Path

from sandbox import handover

# Each language's main prints what it was handed in one shape: its arguments, then each
# file's name and content, then what is left on stdin.
PY = (
    "import sys\nprint(repr(sys.argv[1:]))\n"
    "for n in ('lib/data.txt', 'empty', 'ünï.txt'):\n    print(n, repr(open(n, encoding='utf-8').read()))\n"
    "print('stdin', repr(sys.stdin.read()))\n"
)
JS = (
    "const fs = require('fs');\nconsole.log(JSON.stringify(process.argv.slice(2)));\n"
    "for (const n of ['lib/data.txt', 'empty', 'ünï.txt']) console.log(n, JSON.stringify(fs.readFileSync(n, 'utf8')));\n"
    "console.log('stdin', JSON.stringify(fs.readFileSync(0, 'utf8')));\n"
)
SH = (
    'printf \'%s\\n\' "$#" "$@"\n'
    'for n in lib/data.txt empty ünï.txt; do printf \'%s %s\\n\' "$n" "$(cat "$n")"; done\n'
    "printf 'stdin %s\\n' \"$(cat)\"\n"
)
FILES = {
    "main.py": PY.encode(),
    "main.js": JS.encode(),
    "main.sh": SH.encode(),
    "lib/data.txt": "nested\nlines ✓".encode(),
    "empty": b"",
    "ünï.txt": b"named in UTF-8",
}
ARGS = ["plain", "with space", "", "ümlaut ✓"]
STDIN = b"the program's own input\n"
PATH = Path(__file__).with_name("handover-golden.bin")

if __name__ == "__main__":
    PATH.write_bytes(handover.encode(FILES, ARGS) + STDIN)
