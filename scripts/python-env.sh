# Sourced by fasttask/run.sh and scripts/test.sh: pick the Python that runs FastTask.
#
# fasttask_python REQUIREMENTS_FILE prints the path of a Python interpreter that has the
# packages of REQUIREMENTS_FILE: .venv's when it exists, else python3 when it already has
# FastTask's dependencies, else a new .venv into which the file is installed. A file
# <name>-nodeps.txt beside REQUIREMENTS_FILE is installed too, with pip --no-deps.

fasttask_python() {
    local requirements="$1"
    local marker=".venv/.installed-$(basename "$requirements")"

    if [ ! -x .venv/bin/python ] && python3 -c "import fastapi, celery, redis, uvicorn, pydantic_settings" 2>/dev/null \
        && [ "$requirements" = "requirements.txt" ]; then
        command -v python3
        return
    fi

    if [ ! -x .venv/bin/python ]; then
        echo "Creating .venv with $(python3 --version)" >&2
        python3 -m venv .venv >&2
    fi
    # requirements-test-nodeps.txt lists packages used only for the data files they ship.
    local nodeps="${requirements%.txt}-nodeps.txt"
    if [ ! -f "$marker" ] || [ "$requirements" -nt "$marker" ] || [ requirements.txt -nt "$marker" ] \
        || { [ -f "$nodeps" ] && [ "$nodeps" -nt "$marker" ]; }; then
        echo "Installing $requirements into .venv" >&2
        .venv/bin/python -m pip install --disable-pip-version-check -q -r "$requirements" >&2
        if [ -f "$nodeps" ]; then
            .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps -r "$nodeps" >&2
        fi
        touch "$marker"
        # requirements-test.txt includes requirements.txt, so run.sh (started by the tests) need not reinstall it.
        if grep -q '^-r requirements.txt' "$requirements"; then
            touch .venv/.installed-requirements.txt
        fi
    fi
    echo "$project_root/.venv/bin/python"
}
