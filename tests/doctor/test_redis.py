"""doctor and redis: a client made at import is guarded once the redis integration is installed."""

from __future__ import annotations

from pathlib import Path

from tests._cli import json_report
from tests.doctor._run import check_guarded, check_unguarded, doctor, subjects, write

APP = """\
import redis
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

cache = redis.Redis(host="127.0.0.1", port=9)  # connects on its first command
{install}

def inner(environ, start_response):
    cache.incr("orders")

app = ShadowGuardMiddleware(inner)
"""


def test_a_redis_client_without_its_integration_is_unguarded(tmp_path: Path) -> None:
    check_unguarded(tmp_path, APP, "redis", "redis client", "svc.cache")


def test_a_redis_client_created_before_install_is_guarded(tmp_path: Path) -> None:
    check_guarded(tmp_path, APP, "redis", "svc.cache")


def test_a_redis_cluster_client_is_unguarded_even_with_the_integration(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        from redis.cluster import RedisCluster
        from shadowguard.middleware.wsgi import ShadowGuardMiddleware
        import shadowguard

        shadowguard.install("redis")
        # RedisCluster() connects when made: a bare instance stands in for one.
        cluster = RedisCluster.__new__(RedisCluster)

        def inner(environ, start_response):
            cluster.incr("orders")

        app = ShadowGuardMiddleware(inner)
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert subjects(data) == ["redis cluster client"]
    assert "RedisCluster" in data["unguarded"][0]["remedy"]
