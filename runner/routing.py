from django.urls import path

from .consumers import ExecuteConsumer

websocket_urlpatterns = [
    path("ws/execute", ExecuteConsumer.as_asgi()),
]
