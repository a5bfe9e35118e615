from django.contrib import admin

from .models import Execution


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "language", "status", "exit_code", "duration_ms", "created_at")
    list_filter = ("language", "status")
    readonly_fields = [f.name for f in Execution._meta.fields]
