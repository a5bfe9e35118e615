from django.urls import path

from . import views as api

urlpatterns = [
    path("execute", api.execute, name="execute"),
    path("batch", api.batch, name="batch"),
    path("run/<str:language>", api.run, name="run"),
    path("runtimes", api.runtimes, name="runtimes"),
    path("executions/<uuid:id>", api.execution, name="execution"),
    path("usage", api.usage, name="usage"),
    path("openapi.json", api.openapi_json, name="openapi"),
    path("docs", api.docs, name="docs"),
]
