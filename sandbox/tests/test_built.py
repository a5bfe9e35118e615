"""What a compile built, taken out of its sandbox (sandbox.built): only regular files and
directories, never through a link, within the caps, whatever the compile left there."""

import pytest

import sandbox
from conftest import TEST_UID_BASE
from sandbox.built import Artifact, NotBuilt, take_from


async def built_by(script: str, paths: tuple[str, ...], max_bytes: int = 1 << 20) -> dict[str, Artifact]:
    """Run `script` as a compile stage, then take these paths out as a test case's run would."""
    host = sandbox.Host(uid_base=TEST_UID_BASE, cgroup_parent="code-playground-test")
    spec = sandbox.BoxSpec(
        argv=["/bin/sh", "-c", "echo the run stage ran"],
        compile=["/bin/sh", "-c", script],
        compile_limits=sandbox.Limits(),
        slot=4,
    )
    box = await sandbox.Sandbox.start(spec, host)
    try:
        await box.finished("compile")
        assert not box.end_compile(go=False).failed
        return take_from(box, paths, max_bytes)
    finally:
        assert box.exit_status() is None  # the run stage never started
        await box.destroy()


async def test_files_and_directories_are_taken_with_their_program_bit():
    script = "mkdir -p .build/pkg && printf prog > .main && chmod 755 .main && echo a > .build/pkg/A && echo b > .build/B"
    built = await built_by(script, (".main", ".build"))
    assert built == {
        ".main": Artifact(b"prog", True),
        ".build/B": Artifact(b"b\n", False),
        ".build/pkg/A": Artifact(b"a\n", False),
    }


@pytest.mark.parametrize(
    "script, paths, words",
    [
        ("ln -s /etc/shadow .main", (".main",), "not a regular file"),
        ("ln -s /etc .build", (".build/shadow",), "not a regular file or directory"),
        ("mkdir .build && ln -s /etc/passwd .build/passwd", (".build",), "not a regular file"),
        ("mkfifo .main", (".main",), "not a regular file"),
        ("true", (".main",), "the compile made no .main"),
        ("head -c 2000000 /dev/zero > .main", (".main",), "over 1 MiB"),
        ("mkdir .build && for i in $(seq 5000); do : > .build/$i; done", (".build",), "more than 4096 files"),
    ],
)
async def test_what_is_refused(script, paths, words):
    with pytest.raises(NotBuilt, match=words):
        await built_by(script, paths)
