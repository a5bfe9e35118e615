"""Settings, all from environment variables with safe defaults: zero configuration runs."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from sandbox import spec as limits  # each per-run limit's default is written there, once

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def secret_key() -> str:
    """SECRET_KEY, or one made once and kept beside the database, so zero config stays safe."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / ".data")))
# Made in every case, not only when a key is generated: the database lives here too, and an
# operator's first start sets SECRET_KEY.
DATA_DIR.mkdir(parents=True, exist_ok=True)
SECRET_KEY = secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "runner",
    "playground",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "playground.middleware.static_files",
    "runner.middleware.api_cors",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The JSON API's own, lean stack (runner.handler.ApiHandler): async only, no cookies.
API_MIDDLEWARE = [
    "runner.middleware.api_cors",
]

ROOT_URLCONF = "playground.urls"
ASGI_APPLICATION = "playground.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH", str(DATA_DIR / "db.sqlite3")),
        # Kept open: closing the last connection checkpoints the WAL, milliseconds a request.
        # The API's database work runs on one long-lived thread (runner.handler.ApiHandler),
        # so in practice this is one connection, checked after each API request (before
        # each page request).
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
        # Runs are stored from many requests at once: wait for the write lock, don't fail.
        # WAL with synchronous=NORMAL: a commit costs no fsync of its own, and readers never block writers.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # The tests' database is a file too, not Django's default in-memory one: that one is
        # shared between threads through SQLite's shared cache, where a read in one thread
        # makes another thread's write fail at once ("database table is locked") instead of
        # waiting, which the server's file database never does.
        "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# In memory by default; with REDIS_URL, several server processes share the channel
# layer and the cache (rate limits and concurrency counts).
REDIS_URL = env_str("REDIS_URL", "")
CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "playground")
# Every Redis call gives up after REDIS_TIMEOUT seconds: a Redis that is down or frozen makes
# runs answer 503 at once (runner.fairuse), and holds up nothing else.
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 0.5, minimum=0.01)
REDIS_OPTIONS = {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                    "KEY_PREFIX": CACHE_KEY_PREFIX, "OPTIONS": REDIS_OPTIONS}
    }  # fmt: skip
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, **REDIS_OPTIONS}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".build" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic (make run, make test) writes gzip copies beside each file, and WhiteNoise
    # serves those to clients that accept them.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# In development, serve straight from static/ (a fresh frontend build needs no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG

# Requests: a body over 1 MiB is refused with 413 before it is read (playground.http), and a
# request has RUNNER_REQUEST_TIMEOUT seconds to arrive, its line, headers and body.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RUNNER_MAX_BODY", 1 << 20, minimum=1024)
RUNNER_REQUEST_TIMEOUT = env_float("RUNNER_REQUEST_TIMEOUT", 30.0, minimum=0.1)

# --- The runner: limits are defaults a request may lower, or raise up to the ceiling ---
RUNNER_TIMEOUT = env_int("RUNNER_TIMEOUT", limits.DEFAULT_TIMEOUT_MS, minimum=1)  # ms
RUNNER_MAX_TIMEOUT = env_int("RUNNER_MAX_TIMEOUT", 60_000, minimum=1)  # ms
RUNNER_MEMORY = env_int("RUNNER_MEMORY", limits.DEFAULT_MEMORY_MIB, minimum=16)  # MiB
RUNNER_MAX_MEMORY = env_int("RUNNER_MAX_MEMORY", 1024, minimum=16)  # MiB
# A compile stage's own ceilings; its defaults are each language's (languages/*.toml).
RUNNER_MAX_COMPILE_TIMEOUT = env_int("RUNNER_MAX_COMPILE_TIMEOUT", 30_000, minimum=1)  # ms
RUNNER_MAX_COMPILE_MEMORY = env_int("RUNNER_MAX_COMPILE_MEMORY", 1024, minimum=64)  # MiB
RUNNER_PROCESSES = env_int("RUNNER_PROCESSES", limits.DEFAULT_PROCESSES, minimum=1)
RUNNER_OUTPUT_LIMIT = env_int(
    "RUNNER_OUTPUT_LIMIT", limits.DEFAULT_OUTPUT_BYTES, minimum=1
)  # bytes, stdout and stderr together
RUNNER_TMPFS = env_int("RUNNER_TMPFS", limits.DEFAULT_TMPFS_MIB, minimum=1)  # MiB
RUNNER_FILE_SIZE = env_int("RUNNER_FILE_SIZE", limits.DEFAULT_FILE_SIZE_MIB, minimum=1)  # MiB
RUNNER_OPEN_FILES = env_int("RUNNER_OPEN_FILES", limits.DEFAULT_OPEN_FILES, minimum=16)
RUNNER_CPUS = env_float("RUNNER_CPUS", limits.DEFAULT_CPUS, minimum=0.01)
RUNNER_MAX_CODE = env_int("RUNNER_MAX_CODE", 256 * 1024, minimum=1)  # bytes, code and files together
RUNNER_MAX_FILES = env_int("RUNNER_MAX_FILES", 32, minimum=0)
RUNNER_MAX_BATCH = env_int("RUNNER_MAX_BATCH", 20, minimum=1)  # runs in one POST /api/batch
RUNNER_MAX_TESTS = env_int("RUNNER_MAX_TESTS", 32, minimum=1)  # test cases in one run
# Execution slots: one per core, and at least two, so that one client never holds them all
# (each gets half by default, RUNNER_CLIENT_CONCURRENCY).
RUNNER_CONCURRENCY = env_int("RUNNER_CONCURRENCY", max(2, os.cpu_count() or 1), minimum=1)
RUNNER_QUEUE_SIZE = env_int("RUNNER_QUEUE_SIZE", 32, minimum=0)
RUNNER_QUEUE_WAIT = env_float("RUNNER_QUEUE_WAIT", 30.0)  # seconds a queued run waits for a slot
RUNNER_RETENTION_HOURS = env_float("RUNNER_RETENTION_HOURS", 24.0)
RUNNER_METRICS_TOKEN = env_str("RUNNER_METRICS_TOKEN", "")  # empty: /metrics to loopback only
RUNNER_STOP_GRACE = env_float("RUNNER_STOP_GRACE", 30.0)  # seconds runs in flight may go on at SIGTERM
# What a websocket run may be sent as stdin, in all; past it the socket is closed (4413).
RUNNER_STDIN_LIMIT = env_int("RUNNER_STDIN_LIMIT", 16 << 20, minimum=1)  # bytes
# What a run's record keeps of each of stdin, stdout and stderr (GET /api/executions/<id>).
RUNNER_STORED_LIMIT = env_int("RUNNER_STORED_LIMIT", 64 << 10, minimum=1024)  # bytes
RUNNER_POOL_SIZE = env_int("RUNNER_POOL_SIZE", 2)  # pre-warmed sandboxes per language; 0 disables
# Python's waiting sandboxes are zygotes, which fork each run (docs/architecture.md, SECURITY.md).
RUNNER_ZYGOTE = env_bool("RUNNER_ZYGOTE", True)
# How many zygotes (a multiple of RUNNER_POOL_SIZE); 0: one more than RUNNER_CONCURRENCY, so that a run
# always finds one ready while the others serve runs or ready their next.
RUNNER_ZYGOTES = env_int("RUNNER_ZYGOTES", 0)
# Store finished runs just after their answer (runner.recorder), not before it.
RUNNER_RECORD_IN_BACKGROUND = env_bool("RUNNER_RECORD_IN_BACKGROUND", True)
# The languages served, by their names under languages/ (or aliases), comma-separated; empty: all.
RUNNER_LANGUAGES = env_str("RUNNER_LANGUAGES", "")
# The languages' libraries (Python's data stack): off hides them in the sandbox (and make leaves
# them out), and GET /api/runtimes lists none.
RUNNER_LIBRARIES = env_bool("RUNNER_LIBRARIES", True)
RUNNER_TOOLS_DIR = env_str("RUNNER_TOOLS_DIR", "/opt/code-playground")
RUNNER_UID_BASE = env_int("RUNNER_UID_BASE", 61000, minimum=1000)
RUNNER_CGROUP_PARENT = env_str("RUNNER_CGROUP_PARENT", "code-playground")

# --- Fair use: rate limits, concurrency per client, API keys ---
RUNNER_RATE_LIMIT = env_str("RUNNER_RATE_LIMIT", "60/min")  # per anonymous address; "off" disables
RUNNER_KEY_RATE_LIMIT = env_str("RUNNER_KEY_RATE_LIMIT", "600/min")  # for keys without a rate of their own
RUNNER_TRUSTED_PROXIES = env_str("RUNNER_TRUSTED_PROXIES", "")  # CIDRs whose X-Forwarded-For is believed
# Runs one client may have at once; 0: half the slots (at least one), leaving room for others.
RUNNER_CLIENT_CONCURRENCY = env_int("RUNNER_CLIENT_CONCURRENCY", 0, minimum=0)
RUNNER_CLIENT_WAIT = env_float("RUNNER_CLIENT_WAIT", 2.0)  # seconds an extra run waits for its client's turn
RUNNER_REQUIRE_API_KEY = env_bool("RUNNER_REQUIRE_API_KEY", False)

if RUNNER_TIMEOUT > RUNNER_MAX_TIMEOUT:
    raise ImproperlyConfigured("RUNNER_TIMEOUT must not exceed RUNNER_MAX_TIMEOUT")
if RUNNER_MEMORY > RUNNER_MAX_MEMORY:
    raise ImproperlyConfigured("RUNNER_MEMORY must not exceed RUNNER_MAX_MEMORY")

# LOG_FORMAT=json: every line, the access log's too, is one JSON object (playground.logs).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
FORMATTER = (
    {"()": "playground.logs.JsonFormatter"}
    if LOG_FORMAT == "json"
    else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"main": FORMATTER},
    "filters": {"without_traceback": {"()": "playground.logs.WithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "main"},
        "brief": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["without_traceback"]},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "runner": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False},
        # A request with a Host outside ALLOWED_HOSTS is answered 400 and logged in one line.
        "django.security.DisallowedHost": {"handlers": ["brief"], "level": "WARNING", "propagate": False},
    },
}
