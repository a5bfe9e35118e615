from django.urls import path

from .consumer import ExecuteConsumer

websocket_urlpatterns = [
    path("ws/execute", ExecuteConsumer.as_asgi()),
]
