from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("api/", include("runner.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "playground.views.not_found"
handler500 = "playground.views.server_error"
