import hashlib
import json

from django.db import models
from django.urls import reverse

from runner.wire import SnippetLinks, SnippetRecord

ID_LENGTH = 11
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def content_id(language: str, code: str, stdin: str, title: str, tests: list | None = None) -> str:
    """A short id derived from the content, so the same code always gets the same link."""
    content = [language, code, stdin, title] + ([tests] if tests else [])  # (older ids stay as they were)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:16], "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(chars)


class SnippetQuerySet(models.QuerySet):
    def for_content(
        self, language: str, code: str, stdin: str = "", title: str = "", tests: list | None = None
    ) -> tuple["Snippet", bool]:
        """The snippet for this content, saved now if it is new: (snippet, created)."""
        tests = tests or []
        return self.get_or_create(
            id=content_id(language, code, stdin, title, tests),
            defaults={"language": language, "code": code, "stdin": stdin, "title": title, "tests": tests},
        )


class Snippet(models.Model):
    """Saved code behind a share link. Immutable: an edit is a new snippet (a fork)."""

    id = models.CharField(primary_key=True, max_length=ID_LENGTH, editable=False)
    language = models.CharField(max_length=32)
    code = models.TextField()
    stdin = models.TextField(blank=True)
    title = models.CharField(max_length=200, blank=True)
    # Test cases kept with it, as POST /api/execute takes them ({name, stdin, expectedOutput...}).
    tests = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SnippetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title or f"{self.language} snippet {self.id}"

    def get_absolute_url(self) -> str:
        return reverse("snippet", args=[self.id])

    def embed_url(self) -> str:
        return reverse("embed", args=[self.id])

    def _links(self, request) -> dict:
        return {
            "id": self.id,
            "url": request.build_absolute_uri(self.get_absolute_url()),
            "embed_url": request.build_absolute_uri(self.embed_url()),
        }

    def links(self, request) -> dict:
        return SnippetLinks(**self._links(request)).model_dump(mode="json", by_alias=True)

    def to_dict(self, request) -> dict:
        record = SnippetRecord(
            **self._links(request),
            language=self.language,
            code=self.code,
            stdin=self.stdin,
            title=self.title,
            tests=self.tests,
            created_at=self.created_at,
        )
        data = record.model_dump(mode="json", by_alias=True)
        data["tests"] = self.tests  # as given: a case's fields left out stay out
        return data
