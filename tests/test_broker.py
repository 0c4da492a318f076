"""fasttask.broker: kombu's Redis transport with one client per channel, on a real server."""

from __future__ import annotations

from pathlib import Path

from fasttask import broker
from fasttask.embedded import EmbeddedRedis
from fasttask.settings import Settings
from fasttask.worker import create_celery_app


def redis_app(redis_port: int):
    settings = Settings(master_host="127.0.0.1", task_queue_port=redis_port, task_queue_db=5, tasks_dir=Path("."))
    return create_celery_app(settings, {}, register=False)


def test_redis_broker_uses_fasttask_transport(redis_server: EmbeddedRedis) -> None:
    app = redis_app(redis_server.port)
    with app.connection_for_read() as connection:
        assert isinstance(connection.default_channel, broker.Channel)


def test_other_brokers_keep_their_transport() -> None:
    settings = Settings(broker_url="amqp://guest@127.0.0.1:5672//", result_backend_url="redis://127.0.0.1:1/0", tasks_dir=Path("."))
    app = create_celery_app(settings, {}, register=False)
    assert app.conf.broker_transport is None
    assert app.connection_for_read().transport_cls == "amqp"


def test_channel_reuses_one_client_until_its_pool_changes(redis_server: EmbeddedRedis) -> None:
    app = redis_app(redis_server.port)
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first:
            first.set("fasttask-broker-test", "1")
        with channel.conn_or_acquire() as second:
            assert second.get("fasttask-broker-test") == b"1"

        # kombu drops the channel's pool after a connection error; the next call must not use the old one.
        channel._disconnect_pools()
        with channel.conn_or_acquire() as third:
            assert third.delete("fasttask-broker-test") == 1

    assert second is first
    assert third is not first
    assert third.connection_pool is not first.connection_pool


def test_messages_round_trip_through_the_transport(redis_server: EmbeddedRedis) -> None:
    app = redis_app(redis_server.port)
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("fasttask-broker-test-queue")
        for number in range(3):
            queue.put({"number": number})
        received = []
        for _ in range(3):
            message = queue.get(timeout=5)
            received.append(message.payload["number"])
            message.ack()
        queue.clear()
        queue.close()

    assert received == [0, 1, 2]
