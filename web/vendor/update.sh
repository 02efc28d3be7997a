#!/usr/bin/env bash
# Re-copies the vendored three.js files from the version pinned in ../package.json.
set -euo pipefail
cd "$(dirname "$0")/.."
npm install --no-audit --no-fund --ignore-scripts
src=node_modules/three
for f in build/three.module.min.js examples/jsm/controls/OrbitControls.js \
  examples/jsm/loaders/GLTFLoader.js examples/jsm/utils/BufferGeometryUtils.js LICENSE; do
  mkdir -p "vendor/three/$(dirname "$f")"
  cp "$src/$f" "vendor/three/$f"
done
