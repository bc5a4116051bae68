"""config/settings.py reads the environment: embedded default with nothing set, services with URLs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "DEBUG",
    "SECRET_KEY",
    "CELERY_TASK_ALWAYS_EAGER",
)

PROBE = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "pool": "pool" in db.get("OPTIONS", {}), "debug": settings.DEBUG,
    "cache": settings.CACHES["default"]["BACKEND"], "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL, "data_dir": str(settings.DATA_DIR),
}))
"""


def _settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DATA_DIR": str(tmp_path)}, **env)
    return subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = _settings_with(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_is_off_by_default(tmp_path):
    result = _settings_with(tmp_path, SECRET_KEY="s")
    assert json.loads(result.stdout)["debug"] is False


def test_embedded_default_with_no_services(tmp_path):
    result = _settings_with(tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "engine": "django.db.backends.sqlite3",
        "pool": False,
        "debug": True,
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "eager": True,
        "broker": "memory://localhost/",
        "data_dir": str(tmp_path),
    }


def test_service_urls_switch_to_postgres_and_redis(tmp_path):
    result = _settings_with(
        tmp_path, SECRET_KEY="s", DATABASE_URL="postgres://u@db:5432/x", REDIS_URL="redis://cache:6379/0"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "engine": "django.db.backends.postgresql",
        "pool": True,
        "debug": False,
        "cache": "django.core.cache.backends.redis.RedisCache",
        "eager": False,
        "broker": "redis://cache:6379/0",
        "data_dir": str(tmp_path),
    }


@pytest.mark.parametrize(("var", "value"), [("CELERY_BROKER_URL", "amqp://guest@mq//"), ("CACHE_URL", "dummycache://")])
def test_broker_and_cache_can_be_set_separately(tmp_path, var, value):
    result = _settings_with(tmp_path, SECRET_KEY="s", **{var: value})
    out = json.loads(result.stdout)
    if var == "CELERY_BROKER_URL":
        assert (out["broker"], out["eager"]) == (value, False)
    else:
        assert out["cache"] == "django.core.cache.backends.dummy.DummyCache"
