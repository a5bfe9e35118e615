import uuid
from datetime import timedelta

from django.db import models
from django.utils import timezone

from . import conf
from .schemas import ExecutionRecord, RunResult, RunSpec


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
    STATUSES = [(s, s) for s in ("ok", "error", "timeout", "memory", "output_limit", "killed")]

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
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.language} run {self.id} ({self.status})"

    @classmethod
    def record(cls, spec: RunSpec, result: RunResult) -> "Execution":
        return cls.objects.create(
            id=result.id,
            language=result.language,
            code=spec.code,
            stdin=spec.stdin,
            args=list(spec.args),
            files=spec.files,
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            signal=result.signal or "",
            status=result.status,
            duration_ms=result.duration,
            timed_out=result.timed_out,
            truncated=result.truncated,
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
        )

    def to_dict(self) -> dict:
        record = ExecutionRecord(
            **self.result().model_dump(),
            code=self.code,
            stdin=self.stdin,
            args=self.args,
            files=self.files,
            created_at=self.created_at,
        )
        return record.model_dump(mode="json", by_alias=True)
