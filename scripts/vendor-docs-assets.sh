#!/usr/bin/env bash
# Refresh the Swagger UI and ReDoc files in fasttask/api/static from the npm registry.
# Run it by hand when upgrading, because the service and the tests only read the copied files.
# Usage: scripts/vendor-docs-assets.sh [SWAGGER_UI_VERSION] [REDOC_VERSION]
set -euo pipefail

swagger_version="${1:-5.35.0}"
redoc_version="${2:-2.5.4}"
static_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/fasttask/api/static"
work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

cd "$work_dir"
npm pack --silent "swagger-ui-dist@$swagger_version" "redoc@$redoc_version" >/dev/null
mkdir swagger redoc
tar xzf "swagger-ui-dist-$swagger_version.tgz" -C swagger
tar xzf "redoc-$redoc_version.tgz" -C redoc

cp swagger/package/swagger-ui-bundle.js swagger/package/swagger-ui-bundle.js.LICENSE.txt \
   swagger/package/swagger-ui.css swagger/package/favicon-32x32.png "$static_dir/"
cp swagger/package/LICENSE "$static_dir/swagger-ui-dist.LICENSE"
cp swagger/package/NOTICE "$static_dir/swagger-ui-dist.NOTICE"
cp redoc/package/bundles/redoc.standalone.js redoc/package/bundles/redoc.standalone.js.LICENSE.txt "$static_dir/"
cp redoc/package/LICENSE "$static_dir/redoc.LICENSE"

# ReDoc's sidebar loads its logo from cdn.redoc.ly. With an empty data URL the image fails
# to load and ReDoc hides it, so the page makes no request outside the service.
sed -i 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#"data:,"#' "$static_dir/redoc.standalone.js"
if grep -q "cdn.redoc.ly" "$static_dir/redoc.standalone.js"; then
    echo "redoc.standalone.js still refers to cdn.redoc.ly; adapt the sed line above" >&2
    exit 1
fi

echo "Copied swagger-ui-dist $swagger_version and redoc $redoc_version into $static_dir;"
echo "update the versions named in fasttask/api/docs.py and fasttask/api/static/README.md."
