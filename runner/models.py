import hashlib
import secrets
import uuid
from datetime import timedelta

from django.db import models
from django.db.models import F
from django.utils import timezone

from engine.results import STATUSES, CaseResult, RunResult, StageResult, Summary
from engine.spec import RunSpec

from . import conf
from .rates import Rate, setting_rate
from .wire import ExecutionRecord, Usage


class ExecutionQuerySet(models.QuerySet):
    def cutoff(self):
        return timezone.now() - timedelta(hours=conf.get().retention_hours)

    def retained(self):
        """Runs still inside the retention period: older ones are gone even before pruning."""
        return self.filter(created_at__gte=self.cutoff())

    def expired(self):
        return self.filter(created_at__lt=self.cutoff())

    def prune(self) -> int:
        return self.expired().delete()[0]


class Execution(models.Model):
    STATUSES = [(s, s) for s in STATUSES]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    language = models.CharField(max_length=32)
    code = models.TextField()
    stdin = models.TextField(blank=True)
    args = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=dict, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True)
    signal = models.CharField(max_length=16, blank=True, default="")  # "" when none
    status = models.CharField(max_length=16, choices=STATUSES)
    duration_ms = models.PositiveIntegerField()
    timed_out = models.BooleanField(default=False)
    truncated = models.BooleanField(default=False)
    cpu_time_ms = models.PositiveIntegerField(null=True)
    peak_memory = models.PositiveBigIntegerField(null=True)  # bytes
    compile = models.JSONField(null=True, blank=True)  # the compile stage's result, if it had one
    # The fields cut to RUNNER_STORED_LIMIT when stored ("stdin", "stdout", "compile.stderr"...).
    stored_truncated = models.JSONField(default=list, blank=True)
    # A graded run's: its test cases as asked (with compare, tolerance, stopOnFailure), and each
    # case's result and verdict.
    grading = models.JSONField(null=True, blank=True)
    tests = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.language} run {self.id} ({self.status})"

    @classmethod
    def from_run(cls, spec: RunSpec, result: RunResult) -> "Execution":
        """The record of a finished run, not yet saved: fields_of_run()'s."""
        return cls(**cls.fields_of_run(spec, result))

    @staticmethod
    def fields_of_run(spec: RunSpec, result: RunResult) -> dict:
        """The record of a finished run as every field's plain value (created_at: now). The recorder
        journals these before the answer and makes the row from them in its own thread.

        A run may take and give megabytes; its record keeps at most RUNNER_STORED_LIMIT bytes
        of each of stdin, stdout and stderr, and names the fields it cut.
        """
        limit = conf.get().stored_limit_bytes
        cut: list[str] = []
        compiled = result.compile.model_dump(mode="json") if result.compile else None
        if compiled:
            for name in ("stdout", "stderr"):
                compiled[name] = _stored(compiled[name], limit, f"compile.{name}", cut)
        return dict(
            id=result.id,
            language=result.language,
            code=spec.code,
            stdin=_stored(spec.stdin, limit, "stdin", cut),
            args=list(spec.args),
            files=spec.files,
            stdout=_stored(result.stdout, limit, "stdout", cut),
            stderr=_stored(result.stderr, limit, "stderr", cut),
            exit_code=result.exit_code,
            signal=result.signal or "",
            status=result.status,
            duration_ms=result.duration,
            timed_out=result.timed_out,
            truncated=result.truncated,
            cpu_time_ms=result.cpu_time,
            peak_memory=result.peak_memory,
            compile=compiled,
            grading=_grading(spec, limit, cut),
            tests=_tests(result, limit, cut),
            stored_truncated=cut,
            created_at=timezone.now(),
        )

    def result(self) -> RunResult:
        return RunResult(
            id=self.id,
            language=self.language,
            exit_code=self.exit_code,
            stdout=self.stdout,
            stderr=self.stderr,
            duration=self.duration_ms,
            timed_out=self.timed_out,
            truncated=self.truncated,
            signal=self.signal or None,
            status=self.status,
            cpu_time=self.cpu_time_ms,
            peak_memory=self.peak_memory,
            compile=StageResult.model_validate(self.compile) if self.compile else None,
            tests=None if self.tests is None else [CaseResult.model_validate(case) for case in self.tests],
            summary=None if self.tests is None else Summary.of([case["status"] for case in self.tests]),
        )

    def to_dict(self) -> dict:
        record = ExecutionRecord(
            **self.result().model_dump(),
            grading=self.grading,
            code=self.code,
            stdin=self.stdin,
            args=self.args,
            files=self.files,
            stored_truncated=self.stored_truncated,
            created_at=self.created_at,
        )
        return record.model_dump(mode="json", by_alias=True)


def _grading(spec: RunSpec, limit: int, cut: list[str]) -> dict | None:
    """The test cases as asked, in the request's own words (the wire's TestCaseRequest)."""
    tests = spec.tests
    if tests is None:
        return None
    cases = []
    for i, case in enumerate(tests.cases):
        asked = {"name": case.name, "stdin": _stored(case.stdin, limit, f"grading.cases[{i}].stdin", cut)}
        if case.args is not None:
            asked["args"] = list(case.args)
        if case.expected_output is not None:
            name = f"grading.cases[{i}].expectedOutput"
            asked["expectedOutput"] = _stored(case.expected_output, limit, name, cut)
        if case.limits is not None:
            asked.update(timeout=case.limits.timeout_ms, memory=case.limits.memory_mib)
        cases.append(asked)
    return {"cases": cases, "compare": tests.compare, "tolerance": tests.tolerance,
            "stopOnFailure": tests.stop_on_failure}  # fmt: skip


def _tests(result: RunResult, limit: int, cut: list[str]) -> list[dict] | None:
    if result.tests is None:
        return None
    stored = []
    for case in result.tests:
        data = case.model_dump(mode="json")
        for name in ("stdout", "stderr"):
            data[name] = _stored(data[name], limit, f"tests[{case.index}].{name}", cut)
        stored.append(data)
    return stored


def _stored(text: str, limit: int, name: str, cut: list[str]) -> str:
    """text, or its first `limit` bytes of UTF-8 (whole characters only); a cut one is named in cut."""
    if len(text) * 4 <= limit:  # fits, whatever its characters
        return text
    data = text.encode()
    if len(data) <= limit:
        return text
    cut.append(name)
    return data[:limit].decode(errors="ignore")


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def for_secret(self, secret: str) -> "ApiKey | None":
        return self.active().filter(key_hash=ApiKey.hash(secret)).first()

    def charge(self, key: "ApiKey", runs: int = 1) -> bool:
        """Runs, and a credit each if the key has credits, in one statement; False (and nothing
        charged) when fewer are left."""
        found = self.filter(pk=key.pk)
        changes = {"runs": F("runs") + runs, "last_used_at": timezone.now()}
        if key.credits is not None:
            found = found.filter(credits__gte=runs)
            changes["credits"] = F("credits") - runs
        return bool(found.update(**changes))

    def refund(self, key: "ApiKey", runs: int = 1) -> None:
        """Undo a charge: the runs never started."""
        changes = {"runs": F("runs") - runs}
        if key.credits is not None:
            changes["credits"] = F("credits") + runs
        self.filter(pk=key.pk).update(**changes)


class ApiKey(models.Model):
    """A client's key: only its SHA-256 and a short prefix are stored, never the key itself."""

    PREFIX_LENGTH = 10

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, help_text="Shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    rate = models.CharField(
        max_length=20, blank=True, help_text="Like 600/min, 5/s, 1000/h; blank: RUNNER_KEY_RATE_LIMIT."
    )
    credits = models.PositiveIntegerField(null=True, blank=True, help_text="One per run; blank: unlimited.")
    concurrency = models.PositiveIntegerField(default=4)
    max_timeout_ms = models.PositiveIntegerField(null=True, blank=True, help_text="A higher timeout ceiling.")
    max_memory_mib = models.PositiveIntegerField(null=True, blank=True, help_text="A higher memory ceiling.")
    runs = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str, **fields) -> tuple["ApiKey", str]:
        """Make a key; the plain secret is returned once, here, and never stored."""
        secret = "pgk_" + secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name, prefix=secret[: cls.PREFIX_LENGTH], key_hash=cls.hash(secret), **fields
        )
        return key, secret

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    def rate_limit(self, default: Rate | None) -> Rate | None:
        """The key's own rate, or the default for keys (RUNNER_KEY_RATE_LIMIT)."""
        return setting_rate("API key rate", self.rate) if self.rate else default

    def usage(self) -> dict:
        rate = self.rate_limit(conf.get().key_rate_limit)
        usage = Usage(
            name=self.name, runs=self.runs, credits_remaining=self.credits, rate_limit=rate and str(rate)
        )
        return usage.model_dump(by_alias=True)
