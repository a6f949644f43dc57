"""django-redis's RedisCache as settings configure it, against a real Redis (TEST_REDIS_URL).

events/cache.py relies on what is checked here: `add` only when missing, `incr` on an existing
key, and `incr` of a missing key raising ValueError (never creating it).
"""

import os
import uuid

import pytest
from django_redis.cache import RedisCache

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.mark.redis
def test_the_cache_adds_increments_and_refuses_to_increment_a_missing_key():
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

    cache.delete_many(["page", "version"])
    assert cache.get("version") is None
