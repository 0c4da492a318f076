"""Command line: `python -m fasttask serve | api | worker | healthcheck | user add NAME | user remove NAME`."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import time
from typing import Optional, Sequence

from fasttask.embedded import EmbeddedRedis, EmbeddedServerError
from fasttask.healthcheck import run_healthcheck
from fasttask.logs import configure_logging
from fasttask.processes import current_environment, python_module_command, start_child, stop_child
from fasttask.registry import TaskModuleError, load_tasks, select_tasks
from fasttask.settings import NodeType, Settings, SettingsError, WorkerPool, get_settings
from fasttask.users import DEFAULT_USER, UsersFileError, create_users_file, hash_password, read_users, write_users
from fasttask.worker import create_celery_app, default_node_name

logger = logging.getLogger("fasttask.cli")


class StartError(Exception):
    """The service cannot start. The message states the reason and the fix."""


def ensure_users_file(settings: Settings) -> None:
    """Create the users file on first start; refuse an empty one unless ALLOW_ANONYMOUS is on."""
    if not settings.users_file.exists():
        create_users_file(settings.users_file)
        print(
            f"Created {settings.users_file} with user {DEFAULT_USER!r} and a generated password; "
            "read the password from that file and log in with it.",
            file=sys.stderr,
            flush=True,
        )
        return

    try:
        users = read_users(settings.users_file)
    except UsersFileError as exc:
        raise StartError(str(exc)) from None
    if not users and not settings.allow_anonymous:
        raise StartError(
            f"{settings.users_file} has no users: add one ({{\"name\": \"password\"}}), "
            "or set ALLOW_ANONYMOUS=true to serve without authentication"
        )
    if not users:
        logger.warning("ALLOW_ANONYMOUS is on and %s has no users: every route is open", settings.users_file)


def run_api(settings: Settings) -> int:
    """Serve the HTTP API with uvicorn in this process."""
    import uvicorn

    load_tasks(settings.tasks_dir)
    ensure_users_file(settings)
    uvicorn.run(
        "fasttask.api.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.uvicorn_workers,
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        access_log=settings.access_log,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    return 0


def worker_arguments(settings: Settings, queues: Sequence[str]) -> list[str]:
    return [
        "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(settings.worker_concurrency or os.cpu_count() or 1),
        "--pool", settings.worker_pool.value,
        "--hostname", settings.worker_name or default_node_name(),
        "--loglevel", settings.log_level,
        "--without-gossip",
    ]


def run_worker(settings: Settings) -> int:
    """Run a Celery worker for the task queues chosen by ENABLED_TASKS and DISABLED_TASKS."""
    specs = select_tasks(load_tasks(settings.tasks_dir), settings.enabled_tasks, settings.disabled_tasks)
    if not specs:
        raise StartError("ENABLED_TASKS and DISABLED_TASKS leave this worker with no task to serve")

    app = create_celery_app(settings, specs)
    # Task modules may print; each printed line reaches the worker's log as it is written.
    sys.stdout.reconfigure(line_buffering=True)
    logger.info("worker serving %s through %s", sorted(specs), settings.broker_display)
    if settings.worker_pool != WorkerPool.PREFORK:
        # Celery 5.x enforces time limits only in the prefork pool (celery/concurrency/thread.py and solo.py ignore them).
        logger.warning(
            "WORKER_POOL=%s does not enforce SOFT_TIME_LIMIT or TIME_LIMIT; only the prefork pool does",
            settings.worker_pool.value,
        )
    app.worker_main(worker_arguments(settings, [spec.queue for spec in specs.values()]))
    return 0


class Supervisor:
    """Run child processes until one exits or SIGINT/SIGTERM arrives, then stop them all."""

    def __init__(self) -> None:
        self.children: list[tuple[str, object]] = []
        self.stop_requested = False

    def request_stop(self, signum: int, frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_requested = True

    def wait(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        while not self.stop_requested:
            for name, process in self.children:
                if process.poll() is not None:
                    logger.error("%s exited with code %s; stopping the others", name, process.returncode)
                    return process.returncode or 1
            time.sleep(0.2)
        return 0

    def stop_all(self) -> None:
        for name, process in reversed(self.children):
            stop_child(process, name=name)


def run_serve(settings: Settings) -> int:
    """Start the processes that NODE_TYPE selects: API, worker and, when no Redis is configured, an embedded server."""
    load_tasks(settings.tasks_dir)
    runs_api = settings.node_type in (NodeType.SINGLE_NODE, NodeType.DISTRIBUTED_MASTER)
    runs_worker = settings.node_type in (NodeType.SINGLE_NODE, NodeType.DISTRIBUTED_WORKER)
    if runs_api:
        ensure_users_file(settings)

    embedded: Optional[EmbeddedRedis] = None
    environment = current_environment()
    supervisor = Supervisor()
    try:
        if settings.node_type == NodeType.SINGLE_NODE and not settings.has_external_broker:
            password = settings.task_queue_passwd.get_secret_value() if settings.task_queue_passwd else None
            embedded = EmbeddedRedis(settings.task_queue_port, settings.internal_dir / "redis", password)
            embedded.start()
            environment["MASTER_HOST"] = "127.0.0.1"
            # Watched like the other children, because without it the API could only return 503.
            supervisor.children.append(("embedded Redis-compatible server", embedded.process))

        if runs_worker:
            supervisor.children.append(("worker", start_child(python_module_command("worker"), environment, "worker")))
        if runs_api:
            supervisor.children.append(("API", start_child(python_module_command("api"), environment, "API")))
            logger.info("starting the API on port %d (docs at /docs)", settings.port)
        return supervisor.wait()
    finally:
        supervisor.stop_all()
        if embedded is not None:
            embedded.stop()


def read_new_password(user: str) -> str:
    """Read a password twice from the terminal, or once from the first line of piped stdin."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {user}: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise StartError("the two passwords differ; nothing was changed")
    if not password:
        raise StartError("the password is empty; nothing was changed")
    return password


def load_users_for_edit(settings: Settings) -> dict[str, str]:
    if not settings.users_file.exists():
        return {}
    try:
        return read_users(settings.users_file)
    except UsersFileError as exc:
        raise StartError(f"{exc}; fix or remove the file first") from None


def run_user_add(settings: Settings, name: str) -> int:
    """Add a user, or change its password, storing a PBKDF2 hash in the users file."""
    if not name or ":" in name:
        raise StartError(f"invalid user name {name!r}: it must be non-empty and contain no ':'")
    users = load_users_for_edit(settings)
    existed = name in users
    users[name] = hash_password(read_new_password(name))
    write_users(settings.users_file, users)
    print(f"{'changed the password of' if existed else 'added'} user {name!r} in {settings.users_file}")
    return 0


def run_user_remove(settings: Settings, name: str) -> int:
    """Remove a user from the users file."""
    users = load_users_for_edit(settings)
    if name not in users:
        raise StartError(f"user {name!r} not found in {settings.users_file}")
    del users[name]
    write_users(settings.users_file, users)
    print(f"removed user {name!r} from {settings.users_file}")
    return 0


USER_COMMANDS = {"add": run_user_add, "remove": run_user_remove}


def run_user(settings: Settings, arguments: argparse.Namespace) -> int:
    return USER_COMMANDS[arguments.user_command](settings, arguments.name)


COMMANDS = {"serve": run_serve, "api": run_api, "worker": run_worker, "healthcheck": run_healthcheck}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fasttask", description="Serve Python task modules over HTTP on Celery workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the processes that NODE_TYPE selects (default: API, worker and embedded Redis)")
    commands.add_parser("api", help="start only the HTTP API")
    commands.add_parser("worker", help="start only a Celery worker")
    commands.add_parser("healthcheck", help="exit 0 when the API or worker that NODE_TYPE runs here responds, else 1")

    user = commands.add_parser("user", help="manage the users file (FILES_DIR/user_to_passwd.json)")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="add a user or change its password; reads it from a prompt or stdin")
    add.add_argument("name", help="user name")
    remove = user_commands.add_parser("remove", help="remove a user")
    remove.add_argument("name", help="user name")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        if arguments.command == "user":
            return run_user(settings, arguments)
        return COMMANDS[arguments.command](settings)
    except (SettingsError, TaskModuleError, StartError, EmbeddedServerError) as exc:
        action = "failed" if arguments.command == "user" else "cannot start"
        print(f"fasttask: {action}: {exc}", file=sys.stderr)
        # Docker reserves exit code 2 of a HEALTHCHECK command, and reads any failure as 1.
        return 1 if arguments.command == "healthcheck" else 2
