from django.contrib import admin, messages
from django.utils import timezone

from .models import ApiKey, Execution


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "language", "status", "exit_code", "duration_ms", "created_at")
    list_filter = ("language", "status")
    readonly_fields = [f.name for f in Execution._meta.fields]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "rate", "credits", "concurrency", "runs", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "runs", "last_used_at", "created_at", "revoked_at")
    fields = ("name", "rate", "credits", "concurrency", "max_timeout_ms", "max_memory_mib", *readonly_fields)
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        fields = {
            f: getattr(obj, f) for f in ("rate", "credits", "concurrency", "max_timeout_ms", "max_memory_mib")
        }
        key, secret = ApiKey.issue(obj.name, **fields)
        obj.pk = key.pk
        # Shown once: only its hash is kept.
        messages.warning(request, f"The new key is {secret} — copy it now; it will not be shown again.")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        count = queryset.active().update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {count} keys.")
