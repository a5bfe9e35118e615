"""TypeScript's shared build service (engine.transpile, sandbox.service, runtimes/ts-service.cjs),
through real sandboxes: what it answers, that it keeps nothing between two builds, and that one
that fails or hangs is replaced."""

import base64
import json
import os
from dataclasses import replace

import pytest

from conftest import TEST_UID_BASE
from engine import languages
from engine.backends.local import box_spec
from engine.config import EngineConfig
from engine.transpile import Builder
from sandbox import BoxSpec, Host, Limits
from sandbox.service import SERVICE_SLOT, Service, ServiceError

HOST = Host(tools_dir=os.environ.get("RUNNER_TOOLS_DIR", "/opt/code-playground"), uid_base=TEST_UID_BASE,
            cgroup_parent="code-playground-test")  # fmt: skip
CONFIG = EngineConfig(host=HOST, pool_size=0)
TS = languages.get("typescript")


@pytest.fixture
def builder():
    built = Builder(TS, CONFIG, box_spec(TS, CONFIG, list(TS.build.argv), build=True))
    yield built
    built.close()


def source(files: dict[str, str]) -> dict[str, bytes]:
    return {name: text.encode() for name, text in files.items()}


def test_it_bundles_main_ts_with_the_files_beside_it(builder):
    out = builder.files(
        source(
            {
                "main.ts": "import { f } from './util';\nconsole.log(f())",
                "util.ts": "export const f = (): number => 42",
            }
        )
    )
    assert set(out) == {"main.ts", "util.ts", ".main.mjs"}
    bundle = out[".main.mjs"].decode()
    assert "42" in bundle and "sourceMappingURL=data:application/json" in bundle
    assert 'createRequire("/tmp/main.ts")' in bundle  # paths are the run's: it builds in /tmp too


def test_a_script_without_module_syntax_is_commonjs(builder):
    out = builder.files(source({"main.ts": "const n: number = 1;\nconsole.log(n)"}))
    assert ".main.cjs" in out and ".main.mjs" not in out


def test_a_failed_build_gives_esbuilds_message_and_no_bundle(builder):
    out = builder.files(source({"main.ts": "const x: number = ;"}))
    assert ".main.mjs" not in out and ".main.cjs" not in out
    log = out[".main.log"].decode()
    assert "[ERROR] Unexpected" in log and "main.ts:1:18" in log


def test_it_keeps_nothing_between_two_builds(builder):
    first = builder.files(
        source({"main.ts": "import { f } from './util';\nf()", "util.ts": "export const f = () => 1"})
    )
    assert ".main.mjs" in first
    # The second run gives no util.ts: the first run's is gone, so the import can't resolve.
    second = builder.files(source({"main.ts": "import { f } from './util';\nf()"}))
    assert 'Could not resolve "./util"' in second[".main.log"].decode()
    # Nor can it read the host: the service is a sandbox like a run's.
    third = builder.files(source({"main.ts": "import s from '/etc/shadow';\nconsole.log(s)"}))
    assert "Could not resolve" in third[".main.log"].decode()


def test_one_build_service_runs_on_its_own_uid(builder):
    builder.files(source({"main.ts": "console.log(1)"}))
    box = builder.service._box
    uids = {os.stat(f"/proc/{pid}").st_uid for pid in box.cgroup.pids()} if box.cgroup else set()
    assert uids <= {HOST.uid(SERVICE_SLOT), 0}  # (0: the non-dumpable init's /proc entry)
    assert HOST.uid(SERVICE_SLOT) in uids


def service_of(script: str) -> Service:
    spec = BoxSpec(argv=["/bin/sh", "-c", script], limits=Limits(memory_mib=64))
    return Service(spec, HOST, "test")


def test_a_service_that_does_not_answer_in_time_is_replaced():
    service = service_of("cat > /dev/null")
    try:
        with pytest.raises(ServiceError, match="in time"):
            service.call({"main.ts": b"1"}, timeout=0.3)
        assert not service.running()  # destroyed: the next call starts a fresh one
    finally:
        service.close()


def test_a_service_that_does_not_read_its_request_does_not_hold_the_caller():
    service = service_of("sleep 100")  # never reads: a 4 MiB request fills the pipe
    try:
        with pytest.raises(ServiceError) as failed:
            service.call({"big": b"x" * (4 << 20)}, timeout=0.5)
        assert failed.value.timed_out and not service.running()
    finally:
        service.close()


def test_a_service_that_exits_is_replaced_and_the_next_call_gets_a_fresh_one():
    # It reads one request (16 bytes: no files, no arguments), answers "{}", and exits.
    service = service_of("head -c 16 >/dev/null; printf '\\0\\0\\0\\0\\0\\0\\0\\002{}'")
    try:
        assert service.call({}, timeout=5) == b"{}"
        with pytest.raises(ServiceError):
            service.call({}, timeout=5)  # it is gone: the call fails, and it is destroyed
        assert not service.running()
        assert service.call({}, timeout=5) == b"{}"  # a fresh one
    finally:
        service.close()


def test_a_build_that_never_finishes_is_the_runs_error(builder, monkeypatch):
    monkeypatch.setattr(
        builder.service, "spec", replace(builder.service.spec, argv=["/bin/sh", "-c", "cat > /dev/null"])
    )
    monkeypatch.setattr(builder, "timeout", 0.3)
    out = builder.files(source({"main.ts": "console.log(1)"}))
    assert "the TypeScript build did not finish: no answer in time" in out[".main.log"].decode()
    assert ".main.mjs" not in out and ".main.cjs" not in out


def test_the_answer_is_json_with_the_bundle_in_base64(builder):
    answer = json.loads(builder.service.call(source({"main.ts": "export {}"}), 10))
    assert answer["kind"] == "esm" and base64.b64decode(answer["output"])
