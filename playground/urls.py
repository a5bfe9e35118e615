from django.contrib import admin
from django.urls import include, path
from django.views.decorators.http import require_safe

from . import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("s/<str:id>.txt", views.snippet_raw, name="snippet-raw"),
    path("s/<str:id>", views.snippet_page, name="snippet"),
    path("embed/<str:id>", views.embed, name="embed"),
    path("embed.js", views.embed_js, name="embed-js"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", require_safe(views.metrics), name="metrics"),
    path("api/snippets", api.snippets, name="snippets"),
    path("api/snippets/<str:id>", api.snippet, name="snippet-api"),
    path("api/", include("runner.doors.rest.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "playground.views.bad_request"
handler404 = "playground.views.not_found"
handler500 = "playground.views.server_error"
