from django.contrib import admin

from .models import Snippet


@admin.register(Snippet)
class SnippetAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "language", "created_at")
    list_filter = ("language",)
    search_fields = ("id", "title", "code")
    readonly_fields = ("id", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # Snippets are immutable: once saved, every field is read-only; deleting is allowed.
        if obj is not None:
            return [f.name for f in Snippet._meta.fields]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.id = Snippet.objects.for_content(obj.language, obj.code, obj.stdin, obj.title)[0].id
            return
        super().save_model(request, obj, form, change)
