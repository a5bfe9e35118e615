"""Two checkouts side by side: which is faster per run, with the machine's drift taken out.

    python bench/ab.py OLD_CHECKOUT [NEW_CHECKOUT] [--runs N] [--pool N] [--blocks N]

Starts each checkout's server as `make run` does (its own data dir, uid base and cgroup parent),
then sends both the same requests alternately over one keep-alive connection each: each
language's [bench] program, N times. Prints, per language, both medians and new / old. Both
servers see the same moment of the machine, which a before-and-after pair of `make bench` runs
does not. `--pool 0` compares cold starts. The figures are for bench/NOTES.md, never a test.

Alternating gives each server an idle gap (the other's request) after every run of its own, where
whatever it does after an answer (a teardown, a record's write, a pool's refill) lands for free. To
compare where that work lands, `--blocks N` sends each server its rounds in N blocks in turn instead
(old, new, old, ...): a server's runs then follow its own, as one client's sent back to back do.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from engine import languages  # noqa: E402

TOOLS_DIR = os.environ.get("RUNNER_TOOLS_DIR", "/opt/code-playground")


class Server:
    def __init__(self, checkout: Path, uid_base: int, pool: int):
        self.checkout = checkout
        self.data = Path(tempfile.mkdtemp(prefix="ab-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data),
            "RUNNER_TOOLS_DIR": TOOLS_DIR,
            "RUNNER_UID_BASE": str(uid_base),
            "RUNNER_CGROUP_PARENT": f"code-playground-ab-{uid_base}",
            "RUNNER_RATE_LIMIT": "off",
            "RUNNER_CLIENT_CONCURRENCY": "64",
            "RUNNER_POOL_SIZE": str(pool),
        }
        python = str(checkout / ".venv" / "bin" / "python")
        subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=checkout, env=self.env, check=True)
        self.log = open(self.data / "server.log", "w")
        self.proc = subprocess.Popen(
            [python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=checkout, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def run(self, language: str, code: str) -> float:
        body = json.dumps({"language": language, "code": code})
        start = time.perf_counter()
        self.conn.request("POST", "/api/execute", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        result = json.loads(response.read())
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200 or result.get("status") != "ok":
            raise SystemExit(f"{self.checkout}: {language} answered {response.status}: {result}")
        return elapsed

    def cpu_seconds(self) -> float:
        """CPU time of the server and of every process it has reaped (its sandboxes, whole)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?", default=BASE)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between rounds (refills finish)")
    parser.add_argument("--language", action="append", help="only these (default: every one with [bench])")
    parser.add_argument(
        "--blocks", type=int, default=0, help="each server's rounds in this many blocks in turn"
    )
    args = parser.parse_args()
    old, new = Server(args.old, 58000, args.pool), Server(args.new, 59000, args.pool)
    try:
        programs = [
            (lang.name, lang.bench.code)
            for lang in languages.LANGUAGES
            if lang.bench and (not args.language or lang.name in args.language)
        ]
        for server in (old, new):
            for name, code in programs:
                for _ in range(3):
                    server.run(name, code)
        time.sleep(1)
        cpu = {"old": old.cpu_seconds(), "new": new.cpu_seconds()}
        times: dict[tuple[str, str], list[float]] = {}
        if args.blocks:
            for b in range(args.blocks):
                for server in (old, new) if b % 2 == 0 else (new, old):
                    label = "old" if server is old else "new"
                    for _ in range(max(1, args.runs // args.blocks)):
                        time.sleep(args.gap)
                        for name, code in programs:
                            times.setdefault((label, name), []).append(server.run(name, code))
        else:
            for i in range(args.runs):
                time.sleep(args.gap)
                for name, code in programs:
                    pair = (old, new) if i % 2 == 0 else (new, old)
                    for server in pair:
                        key = ("old" if server is old else "new", name)
                        times.setdefault(key, []).append(server.run(name, code))
        time.sleep(2)  # the last teardowns and refills
        cpu = {"old": old.cpu_seconds() - cpu["old"], "new": new.cpu_seconds() - cpu["new"]}
        how = f"in {args.blocks} blocks in turn" if args.blocks else "alternating"
        print(f"{len(times['old', programs[0][0]])} runs of each, pool {args.pool}, {how}")
        print(f"{'language':<12} {'old p50':>9} {'new p50':>9} {'new/old':>8}")
        for name, _ in programs:
            a, b = statistics.median(times["old", name]), statistics.median(times["new", name])
            print(f"{name:<12} {a:8.2f}ms {b:8.2f}ms {b / a:8.3f}")
        runs = args.runs * len(programs)
        print(
            f"CPU per run, server and sandboxes: old {cpu['old'] / runs * 1000:.2f} ms, "
            f"new {cpu['new'] / runs * 1000:.2f} ms, new/old {cpu['new'] / cpu['old']:.3f}"
        )
        for label, server in (("old", old), ("new", new)):
            server.conn.request("GET", "/healthz")
            print(f"{label} server's starts:", json.loads(server.conn.getresponse().read())["runs"])
    finally:
        old.stop()
        new.stop()


if __name__ == "__main__":
    main()
