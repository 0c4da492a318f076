#!/usr/bin/env bash
# Run the test suite. On first use it creates .venv and installs requirements-test.txt.
# Arguments go to pytest, for example: scripts/test.sh -k auth
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"

# shellcheck source=scripts/python-env.sh
source "$project_root/scripts/python-env.sh"
python_bin="$(fasttask_python requirements-test.txt)"

exec "$python_bin" -m pytest "$@"
