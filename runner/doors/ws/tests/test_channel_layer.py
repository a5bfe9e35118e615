"""The channel layer: in memory by default, Redis when REDIS_URL is set."""

import os
import socket
import subprocess
import sys

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

REDIS = ("127.0.0.1", 6379)


def redis_running() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


def configured_backend(**env) -> str:
    code = "import django; django.setup(); from django.conf import settings; print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "playground.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_default_layer_is_in_memory():
    assert configured_backend(REDIS_URL="") == "channels.layers.InMemoryChannelLayer"


def test_redis_url_selects_the_redis_layer():
    assert configured_backend(REDIS_URL="redis://127.0.0.1:6379/0") == "channels_redis.core.RedisChannelLayer"


@pytest.mark.skipif(
    not redis_running(), reason="no Redis server on 127.0.0.1:6379 to test the Redis layer against"
)
async def test_messages_cross_the_real_redis_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": "playground-test"},
        }
    }
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("playground-test-group", channel)
    await layer.group_send("playground-test-group", {"type": "run.kill", "id": "abc"})
    assert await layer.receive(channel) == {"type": "run.kill", "id": "abc"}
    await layer.group_discard("playground-test-group", channel)
    await layer.flush()
