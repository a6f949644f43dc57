"""ahoum.cache.RedisCache against a real Redis server (TEST_REDIS_URL; CI sets it)."""

import os
import uuid

import pytest

from ahoum.cache import RedisCache

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.mark.redis
def test_one_client_serves_every_call_and_the_cache_works():
    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})  # its own keys

    cache.set("page", {"results": [1, 2]}, 30)
    assert cache.add("version", 1, None)
    assert not cache.add("version", 5, None)
    assert cache.incr("version") == 2
    assert cache.incr("version", 3) == 5
    with pytest.raises(ValueError):
        cache.incr("never-set")
    assert cache.get("never-set") is None
    assert cache.get("page") == {"results": [1, 2]}
    assert cache.get("missing") is None

    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is client
    cache.delete_many(["page", "version"])
    assert cache.get("version") is None
