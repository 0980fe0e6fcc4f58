#!/usr/bin/env bash
# By-hand SN39 runs (docs/benchmarks.md, "Real SN39 submissions"). Needs the checkouts in /tmp/sn39,
# the local git server of womboai/edge-maxxing on 172.17.0.1:8765 and /tmp/sn39/gitconfig.
set -u
cd "$(dirname "$0")/../.."
export EDGEMAXX_DATA_DIR=${EDGEMAXX_DATA_DIR:-/var/lib/edgemaxx-sn39} EDGEMAXX_BUILD_GIT_CONFIG=/tmp/sn39/gitconfig COLUMNS=250
EM=${EDGEMAXX:-.venv/bin/edgemaxx}
for repo in flux-schnell-edge-inference baseline-78d2e2d randomminer1 topsonvici-03 topsonvici-03-c713879 sep-d8 edge-maxxing-7c760ac; do
  echo "=== check --no-build $repo"; $EM check /tmp/sn39/$repo --no-build; echo "rc=$?"
done
echo "=== check URL"; $EM check https://github.com/womboai/flux-schnell-edge-inference@2cff82c --no-build; echo "rc=$?"
for repo in flux-schnell-edge-inference flux-schnell-edge-inference randomminer1 topsonvici-03 topsonvici-03; do
  echo "=== build $repo"; start=$(date +%s.%N)
  $EM check /tmp/sn39/$repo --sandbox docker; rc=$?
  echo "rc=$rc elapsed=$(echo "$(date +%s.%N) - $start" | bc)"
done
