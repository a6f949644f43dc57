"""Django's Redis cache backend, with one client per connection pool and a one-trip incr.

Django's `RedisCacheClient.get_client()` builds a new `redis.Redis` for every operation, and
building one fills its table of response callbacks: about 0.3 ms of CPU per cache call on the
benchmark machine, more than the network round trip (bench/README.md). A `redis.Redis` is
thread-safe and only borrows connections from its pool, so one per pool serves every call.

Django's `incr()` asks EXISTS, then INCRBY: two round trips, and a key evicted between them
comes back as 1. One script does both atomically (the catalogue cache bumps on every booking).
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key, delta):
        value = self.get_client(key, write=True).eval(INCR_EXISTING, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return nil
"""


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
