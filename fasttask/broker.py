"""kombu's Redis transport, with one synchronous Redis client per channel instead of one per call.

kombu 5.x builds a new redis-py client object for every message it takes and acknowledges
(`Channel.conn_or_acquire`), and a redis-py client builds its table of response callbacks
each time. In a py-spy profile of a worker's main process, which takes the messages for the
whole worker on one thread, that was about a fifth of the time spent per message. The client
is only a front for the channel's connection pool, so one client serves every call.

The same client puts unacknowledged messages back when a connection error closes the channel.
kombu 5.7's own channel stops the worker at that step (see Channel._sync_client).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: Optional[redis.Redis] = None

    @contextmanager
    def conn_or_acquire(self, client: Optional[redis.Redis] = None) -> Iterator[Any]:
        yield client or self._sync_client()

    def _sync_client(self) -> redis.Redis:
        # A closing channel has dropped its pool and puts its unacknowledged messages back. A new
        # pool fails there (the transport is detached), so the old client does it. Its pool
        # reconnects, or raises ConnectionError, which Celery ignores while it reconnects.
        # NOTE: messages of tasks still running go back too, so those tasks can run twice.
        if self._closing and self._shared_client is not None:
            return self._shared_client

        # The channel replaces its pool after a fork; the client must follow it.
        if self._shared_client is None or self._shared_client.connection_pool is not self.pool:
            self._shared_client = self._create_client()
        return self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel


# Value of Celery's broker_transport setting for a redis:// or rediss:// broker URL.
TRANSPORT_PATH = f"{Transport.__module__}:{Transport.__name__}"
