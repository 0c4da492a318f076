#!/usr/bin/env bash
# Start the FastTask processes that NODE_TYPE selects (default: API, worker and embedded Redis).
# On first use it creates .venv and installs requirements.txt, unless the current python3
# already has the dependencies (as in the Docker image).
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"

# shellcheck source=scripts/python-env.sh
source "$project_root/scripts/python-env.sh"
python_bin="$(fasttask_python requirements.txt)"

exec "$python_bin" -m fasttask serve "$@"
