"""make bench: the run path measured against a bare interpreter, interleaved in one run on one machine.

Starts the server as `make run` does (manage.py serve) on a free loopback port, then measures:
  - p50/p95 latency of POST /api/execute for print(1) in each language, over one keep-alive
    connection, 30 runs after a warm-up, interleaved with the bare interpreter started with a
    clean environment (no sandbox), so both see the same machine at the same moment;
  - TypeScript and JavaScript sent back to back, 30 runs each one after another, with no pause
    for the pools to refill (agents and test pipelines send runs so);
  - grading: 20 test cases of a small Python program in one POST /api/execute (graded in
    parallel), against the same 20 inputs sent as 20 runs one after another;
  - throughput: 60 Python runs from 4 concurrent clients, against 60 bare runs on 2 workers;
  - resident memory of the server and everything under it, idle and under that load (VmRSS
    summed, and PSS: shared pages split among the processes that share them);
  - with BENCH_PISTON set to a Piston API on loopback (say http://127.0.0.1:2000; nothing of
    Piston is installed by the project), the same latency runs sent to it too, interleaved, for
    each language it has, and its Python throughput from the same 4 clients.
Prints a table with the ratios and writes bench/results/latest.json. Figures are ratios to the
baseline of the same run; no number here is a test.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
from engine import languages  # noqa: E402

RESULTS = BASE / "bench" / "results"
RUNS = 30
WARMUP = 5
THROUGHPUT_RUNS = 60
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
# Each language's program and its bare baseline come from its file under languages/ ([bench]);
# a language without a baseline is compared with the JavaScript API.
PROGRAMS = {
    lang.name: (lang.bench.code, list(lang.bench.bare) if lang.bench.bare else None)
    for lang in languages.LANGUAGES
    if lang.bench
}
# The performance issue's targets (docs/performance.md). TypeScript's is for runs sent back to
# back (back_to_back() below), the pattern of agents and test pipelines.
TARGETS = {
    "python": (
        "Python: p50 <= 0.6 x bare python3 -c",
        lambda r: r["python"]["api_p50"] <= 0.6 * r["python"]["bare_p50"],
    ),
    "javascript": (
        "JavaScript: p50 <= 0.35 x bare node -e",
        lambda r: r["javascript"]["api_p50"] <= 0.35 * r["javascript"]["bare_p50"],
    ),
    "bash": ("Bash: p50 <= bare + 4 ms", lambda r: r["bash"]["api_p50"] <= r["bash"]["bare_p50"] + 4),
}
# A Piston API to compare with (optional), and the names it may give our languages.
PISTON = os.environ.get("BENCH_PISTON", "")
PISTON_NAMES = {
    "python": ("python", "py", "python3"),
    "javascript": ("javascript", "js", "node"),
    "bash": ("bash", "sh"),
}
BACK_TO_BACK_RUNS = 30
BACK_TO_BACK_ROUNDS = 5
GRADED_CASES = 20
GRADED_ROUNDS = 7
GRADED_PROGRAM = "n = int(input())\nprint(sum(i * i for i in range(n)))"
# A compiled language, compile included, against the same compile and run done by hand outside
# the sandbox (its [bench] bare, in a fresh directory of a tmpfs holding the program).
BY_HAND_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
COMPILED = {lang.name: lang.filename for lang in languages.LANGUAGES if lang.compile and lang.bench}
for _name in COMPILED:
    TARGETS[_name] = (
        f"{languages.get(_name).title}: p50 <= 1.3 x the same compile and run by hand",
        lambda r, n=_name: r[n]["api_p50"] <= 1.3 * r[n]["bare_p50"],
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_kib(pid: int, field: str = "VmRSS:") -> int:
    """Resident memory of a process and all its descendants, in KiB.

    VmRSS counts a page shared by several processes (the node binary's, libc's) once per
    process; tree_pss_kib() splits it among them, which is what the tree costs the machine.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    total, todo = 0, [pid]
    source = "status" if field == "VmRSS:" else "smaps_rollup"
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/{source}") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith(field)), 0)
        except (FileNotFoundError, ProcessLookupError):
            pass
        todo += children.get(current, [])
    return total


def tree_pss_kib(pid: int) -> int:
    return tree_rss_kib(pid, "Pss:")


class Api:
    """One keep-alive connection to the server."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def run(self, language: str, code: str) -> float:
        body = json.dumps({"language": language, "code": code})
        start = time.perf_counter()
        self.conn.request("POST", "/api/execute", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        result = json.loads(data)
        if response.status != 200 or result.get("stdout") != "1\n":
            raise SystemExit(f"bench: a {language} run went wrong: {response.status} {data[:300]!r}")
        return elapsed


class Piston:
    """One keep-alive connection to a Piston API (v2): POST /api/v2/execute, each language at the
    version its /api/v2/runtimes lists."""

    def __init__(self, base: str):
        url = urllib.parse.urlsplit(base)
        if url.scheme != "http" or not (url.hostname or "").startswith(("127.", "localhost")):
            raise SystemExit(f"bench: BENCH_PISTON must be an http:// address on loopback, not {base!r}")
        self.conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        self.prefix = url.path.rstrip("/")
        self.conn.request("GET", f"{self.prefix}/api/v2/runtimes")
        runtimes = json.loads(self.conn.getresponse().read())
        self.versions = {}
        for ours, names in PISTON_NAMES.items():
            for runtime in runtimes:
                if {runtime["language"], *runtime.get("aliases", [])} & set(names):
                    self.versions[ours] = (runtime["language"], runtime["version"])
                    break

    def run(self, language: str, code: str) -> float:
        name, version = self.versions[language]
        body = json.dumps({"language": name, "version": version, "files": [{"content": code}]})
        start = time.perf_counter()
        self.conn.request("POST", f"{self.prefix}/api/v2/execute", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200 or json.loads(data).get("run", {}).get("stdout") != "1\n":
            raise SystemExit(
                f"bench: a {language} run on Piston went wrong: {response.status} {data[:300]!r}"
            )
        return elapsed


def bare(argv: list[str], language: str | None = None) -> float:
    """One run with no sandbox; a compiled language's in a fresh directory holding its program
    (made before the clock starts, removed after it stops)."""
    if language not in COMPILED:
        start = time.perf_counter()
        subprocess.run(argv, env=CLEAN_ENV, stdout=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - start) * 1000
    # In a tmpfs, as the sandbox's build is: on the host's disk Go's build cache alone made the
    # by-hand build 1.8 x as long (bench/NOTES.md, 2026-12-04).
    with tempfile.TemporaryDirectory(dir=BY_HAND_DIR) as work:
        Path(work, COMPILED[language]).write_text(PROGRAMS[language][0])
        start = time.perf_counter()
        subprocess.run(argv, env={**CLEAN_ENV, "HOME": work}, cwd=work, stdout=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - start) * 1000


def start_server(data: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "RUNNER_RATE_LIMIT": "off",  # the bench is one client sending many runs
        "RUNNER_CLIENT_CONCURRENCY": "8",
        "RUNNER_UID_BASE": "63000",
        "RUNNER_CGROUP_PARENT": "code-playground-bench",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE, env=env, check=True)
    log = open(data / "server.log", "w")
    proc = subprocess.Popen(
        [python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=BASE, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    for _ in range(400):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(
                    f"bench: the server did not start: {(data / 'server.log').read_text()}"
                ) from None
            time.sleep(0.05)
    raise SystemExit("bench: the server did not start listening")


def latency(port: int, piston: Piston | None) -> dict:
    api = Api(port)
    compared = piston.versions if piston else {}
    for language, (code, _) in PROGRAMS.items():
        for _ in range(WARMUP):
            api.run(language, code)
            if language in compared:
                piston.run(language, code)
    samples = {lang: {"api": [], "bare": [], "piston": []} for lang in PROGRAMS}
    for _ in range(RUNS):  # interleaved: each round measures everything once
        for language, (code, argv) in PROGRAMS.items():
            samples[language]["api"].append(api.run(language, code))
            if argv:
                samples[language]["bare"].append(bare(argv, language))
            if language in compared:
                samples[language]["piston"].append(piston.run(language, code))
    out = {}
    for language, s in samples.items():
        row = {"api_p50": percentile(s["api"], 0.5), "api_p95": percentile(s["api"], 0.95)}
        if s["bare"]:
            row.update(bare_p50=percentile(s["bare"], 0.5), bare_p95=percentile(s["bare"], 0.95))
        if s["piston"]:
            row.update(piston_p50=percentile(s["piston"], 0.5), piston_p95=percentile(s["piston"], 0.95))
        out[language] = row
    return out


def back_to_back(port: int) -> dict:
    """TypeScript, then JavaScript, each sent BACK_TO_BACK_RUNS times one after another on one
    connection, with nothing in between: the pools get no pause to refill. In BACK_TO_BACK_ROUNDS
    rounds, the two languages in turn, and the percentiles over all of a language's runs: one
    round's p50 of either moves by a quarter from one round to the next on the same code, as
    the pools' refills (a Node start each) land."""
    api = Api(port)
    times: dict[str, list[float]] = {"typescript": [], "javascript": []}
    for _ in range(BACK_TO_BACK_ROUNDS):
        for language, kept in times.items():
            code = PROGRAMS[language][0]
            kept += [api.run(language, code) for _ in range(BACK_TO_BACK_RUNS)]
            time.sleep(1)  # the pools refill before the next language
    return {lang: {"p50": percentile(t, 0.5), "p95": percentile(t, 0.95)} for lang, t in times.items()}


def grading(port: int) -> dict:
    """GRADED_CASES cases in one graded run, against the same inputs as that many runs sent one
    after another on one connection; GRADED_ROUNDS rounds, interleaved."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(body: dict) -> dict:
        conn.request("POST", "/api/execute", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        result = json.loads(response.read())
        if response.status != 200 or result["status"] != "ok":
            raise SystemExit(f"bench: a graded run went wrong: {response.status} {str(result)[:300]}")
        return result

    inputs = [str(100 * i) for i in range(GRADED_CASES)]
    expected = [str(sum(i * i for i in range(int(n)))) for n in inputs]
    tests = [{"stdin": n, "expectedOutput": e} for n, e in zip(inputs, expected, strict=True)]
    graded, separate = [], []
    for _ in range(GRADED_ROUNDS):
        start = time.perf_counter()
        post({"language": "python", "code": GRADED_PROGRAM, "tests": tests})
        graded.append((time.perf_counter() - start) * 1000)
        time.sleep(0.5)  # the pool refills
        start = time.perf_counter()
        for n in inputs:
            post({"language": "python", "code": GRADED_PROGRAM, "stdin": n})
        separate.append((time.perf_counter() - start) * 1000)
        time.sleep(0.5)
    return {
        "cases": GRADED_CASES,
        "graded_p50": percentile(graded, 0.5),
        "separate_p50": percentile(separate, 0.5),
    }


def runs_per_second(clients: int, one) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(THROUGHPUT_RUNS)))
    return THROUGHPUT_RUNS / (time.perf_counter() - start)


def piston_throughput(piston: Piston) -> float:
    local = threading.local()

    def one(_):
        if not hasattr(local, "piston"):
            local.piston = Piston(PISTON)
        local.piston.run("python", "print(1)")

    return runs_per_second(4, one)


def throughput(port: int, server_pid: int) -> dict:
    peak = {"rss": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], tree_rss_kib(server_pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    local = threading.local()

    def one(_):
        if not hasattr(local, "api"):
            local.api = Api(port)
        local.api.run("python", "print(1)")

    before = starts(port)
    api_rate = runs_per_second(4, one)
    after = starts(port)
    stop.set()
    sampler.join()
    bare_rate = runs_per_second(2, lambda _: bare(PROGRAMS["python"][1]))
    return {
        "api_runs_per_s": api_rate,
        "bare_runs_per_s": bare_rate,
        "loaded_rss_mib": peak["rss"] / 1024,
        "starts": {kind: after.get(kind, 0) - before.get(kind, 0) for kind in after},
    }


def starts(port: int) -> dict:
    """How many runs so far took a pre-warmed sandbox, and how many started cold."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/healthz")
    return json.loads(conn.getresponse().read())["runs"]


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores ({cpu}), {mem / 1024 / 1024:.0f} GiB, Linux {platform.release()}"


def main() -> None:
    piston = Piston(PISTON) if PISTON else None
    data = Path(tempfile.mkdtemp(prefix="playground-bench-"))
    proc, port = start_server(data)
    try:
        lat = latency(port, piston)
        lat_starts = starts(port)
        time.sleep(1)
        b2b = back_to_back(port)
        time.sleep(1)
        graded = grading(port)
        time.sleep(1)
        idle = tree_rss_kib(proc.pid) / 1024
        idle_pss = tree_pss_kib(proc.pid) / 1024
        tput = throughput(port, proc.pid)
        if piston and "python" in piston.versions:
            tput["piston_runs_per_s"] = piston_throughput(piston)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "make bench",
        "latency_ms": lat,
        "latency_starts": lat_starts,
        "back_to_back_ms": b2b,
        "grading_ms": graded,
        "throughput": tput,
        "idle_rss_mib": idle,
        "idle_pss_mib": idle_pss,
        "targets": {
            name: {"target": text, "met": check(lat)}
            for name, (text, check) in TARGETS.items()
            if name in lat
        },
    }
    ts, js = b2b["typescript"], b2b["javascript"]
    results["targets"]["typescript"] = {
        "target": "TypeScript back to back: p50 <= 1.3 x and p95 <= 1.5 x JavaScript's",
        "met": ts["p50"] <= 1.3 * js["p50"] and ts["p95"] <= 1.5 * js["p95"],
    }
    results["targets"]["grading"] = {
        "target": f"{GRADED_CASES} Python test cases in one graded run: p50 well under 1 s",
        "met": graded["graded_p50"] < 1000,
    }
    results["targets"]["throughput"] = {
        "target": "Python throughput >= 0.65 x the bare loop",
        "met": tput["api_runs_per_s"] >= 0.65 * tput["bare_runs_per_s"],
    }
    if "piston_runs_per_s" in tput:
        results["targets"]["piston_throughput"] = {
            "target": "Python throughput >= 2 x Piston's",
            "met": tput["api_runs_per_s"] >= 2 * tput["piston_runs_per_s"],
        }
    on_piston = [name for name, row in lat.items() if "piston_p50" in row]
    if on_piston:
        results["targets"]["piston_latency"] = {
            "target": f"p50 <= Piston's / 3 in every language it has ({', '.join(on_piston)})",
            "met": all(3 * lat[name]["api_p50"] <= lat[name]["piston_p50"] for name in on_piston),
        }
    results["targets"]["memory"] = {
        "target": "idle server with pools <= 200 MiB (PSS)",
        "met": idle_pss <= 200,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(r: dict) -> str:
    lat, t, b2b = r["latency_ms"], r["throughput"], r["back_to_back_ms"]
    lines = [
        f"{r['date']} · {r['machine']} · `{r['command']}`",
        "",
    ]
    piston = any("piston_p50" in row for row in lat.values())
    head = "| Language | API p50 | API p95 | Bare p50 | Bare p95 | API / bare (p50) |"
    lines += [
        head + (" Piston p50 | Piston / API (p50) |" if piston else ""),
        "|---" * (8 if piston else 6) + "|",
    ]
    for language, row in lat.items():
        if "bare_p50" in row:
            ratio = f"{row['api_p50'] / row['bare_p50']:.2f}"
            bare_cells = f"{row['bare_p50']:.1f} ms | {row['bare_p95']:.1f} ms"
        else:
            ratio = f"{row['api_p50'] / lat['javascript']['api_p50']:.2f} × JavaScript API"
            bare_cells = "– | –"
        line = f"| {language} | {row['api_p50']:.1f} ms | {row['api_p95']:.1f} ms | {bare_cells} | {ratio} |"
        if piston:
            line += (
                f" {row['piston_p50']:.1f} ms | {row['piston_p50'] / row['api_p50']:.1f} × |"
                if "piston_p50" in row
                else " – | – |"
            )
        lines.append(line)
    s = r["latency_starts"]
    lines += [
        "",
        f"Latency runs: {s['warm']} took a pre-warmed sandbox ({s.get('zygote', 0)} of them forked from a zygote), "
        f"{s['cold']} started cold.",
        f"Back to back ({BACK_TO_BACK_RUNS} runs each, one after another, {BACK_TO_BACK_ROUNDS} rounds in turn): TypeScript p50 {b2b['typescript']['p50']:.1f} ms, "
        f"p95 {b2b['typescript']['p95']:.1f} ms; JavaScript p50 {b2b['javascript']['p50']:.1f} ms, "
        f"p95 {b2b['javascript']['p95']:.1f} ms; ratios {b2b['typescript']['p50'] / b2b['javascript']['p50']:.2f} (p50), "
        f"{b2b['typescript']['p95'] / b2b['javascript']['p95']:.2f} (p95).",
        f"Grading ({r['grading_ms']['cases']} Python test cases): in one graded run {r['grading_ms']['graded_p50']:.0f} ms; "
        f"as {r['grading_ms']['cases']} runs one after another {r['grading_ms']['separate_p50']:.0f} ms; ratio "
        f"{r['grading_ms']['graded_p50'] / r['grading_ms']['separate_p50']:.2f}.",
        f"Throughput (60 Python runs): API from 4 clients {t['api_runs_per_s']:.1f} runs/s; bare python3 on 2 workers "
        f"{t['bare_runs_per_s']:.1f} runs/s; ratio {t['api_runs_per_s'] / t['bare_runs_per_s']:.2f}"
        + (
            f"; Piston from 4 clients {t['piston_runs_per_s']:.1f} runs/s (API / Piston "
            f"{t['api_runs_per_s'] / t['piston_runs_per_s']:.2f})"
            if "piston_runs_per_s" in t
            else ""
        )
        + f". Of the API's runs, {t['starts'].get('zygote', 0)} were forked from a zygote, "
        f"{t['starts'].get('warm', 0) - t['starts'].get('zygote', 0)} took another pre-warmed sandbox and "
        f"{t['starts'].get('cold', 0)} started cold.",
        f"Resident memory of the server and its children (VmRSS summed): idle {r['idle_rss_mib']:.0f} MiB, "
        f"loaded {t['loaded_rss_mib']:.0f} MiB; idle with shared pages counted once (PSS) {r['idle_pss_mib']:.0f} MiB.",
        "",
        "| Target | Met |",
        "|---|---|",
    ]
    lines += [f"| {v['target']} | {'yes' if v['met'] else 'no'} |" for v in r["targets"].values()]
    return "\n".join(lines)


if __name__ == "__main__":
    os.chdir(BASE)
    sys.path.insert(0, str(BASE))
    main()
