#!/usr/bin/env bash
# Run the benchmark. On first use it creates .venv and installs requirements-bench.txt.
# Arguments go to `python -m bench`, for example: bench/run.sh --quick
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"

# shellcheck source=scripts/python-env.sh
source "$project_root/scripts/python-env.sh"
python_bin="$(fasttask_python requirements-bench.txt)"

exec "$python_bin" -m bench "$@"
