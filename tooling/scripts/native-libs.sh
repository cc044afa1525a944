#!/usr/bin/env bash
# Installs the optional system libraries the `native` backend loads at run time, where Debian/
# Ubuntu's apt can: OpenBLAS (matrix products) and oneDNN 2.x (convolutions), with which the
# default model's training step ran 1.8× faster than on the addon's built-in kernels
# (docs/performance.md), and Open MPI (`mpirun`, libmpi.so.40) for data-parallel training over
# several processes (docs/scale-out.md). Never fails: without apt, root or sudo it says what to
# install and everything runs on the built-in kernels, in one process. MDM_NO_SYSTEM_PACKAGES=1 skips it.
# Also the Vulkan loader (libvulkan1): on Linux WebGPU reaches a GPU through Vulkan (the `webgpu`
# backend, ONNX Runtime's `webgpu` device; the GPU's driver brings its Vulkan driver).
# With --test (the README's test command, CI), what the tests need besides: Debian's Chromium,
# which the web page's test (apps/web) drives headless, and Mesa's software Vulkan driver
# (mesa-vulkan-drivers; Debian 12's is too old for ONNX Runtime's Dawn, so lavapipe.sh then fetches
# a newer one). Without them those tests are skipped (outside CI).
set -u
say() { echo "[native-libs] $*"; }
have() { ldconfig -p 2>/dev/null | grep -q "$1"; }
tests=false
if [ "${1:-}" = --test ]; then
  tests=true
  # After whatever this script does (every branch below ends in exit 0).
  trap 'bash "$(dirname "$0")/lavapipe.sh"' EXIT
fi

packages=()
have libopenblas.so.0 || packages+=(libopenblas0)
have libdnnl.so.2 || packages+=(libdnnl2)
{ have libmpi.so.40 && command -v mpirun >/dev/null; } || packages+=(openmpi-bin)
have libvulkan.so.1 || packages+=(libvulkan1)
if $tests; then
  compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null || packages+=(mesa-vulkan-drivers)
  [ -x /usr/bin/chromium ] || packages+=(chromium)
fi
if [ ${#packages[@]} -eq 0 ]; then
  extra=''
  $tests && extra=", Chromium and Mesa's Vulkan drivers"
  say "OpenBLAS, oneDNN, Open MPI and the Vulkan loader$extra are installed"
  exit 0
fi
if [ "${MDM_NO_SYSTEM_PACKAGES:-}" = 1 ]; then
  say "MDM_NO_SYSTEM_PACKAGES=1: not installing ${packages[*]}; the built-in kernels run (slower), in one process"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  say 'no apt-get here: install OpenBLAS (libopenblas.so.0) and oneDNN 2.x (libdnnl.so.2) from your' \
    'system packages for faster training, Open MPI 4 (mpirun, libmpi.so.40) for several processes, and' \
    'the Vulkan loader (libvulkan.so.1) for WebGPU; until then the built-in kernels run, in one process'
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  say "for faster training (and mpirun) run: sudo apt-get install -y ${packages[*]}" \
    '(not done: no root or password-less sudo); the built-in kernels run until then'
  exit 0
fi
say "installing ${packages[*]} with apt-get (optional, ~100 MB; MDM_NO_SYSTEM_PACKAGES=1 skips it)"
install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; }
if install >/tmp/mdm-native-libs.log 2>&1 ||
  { "${sudo[@]}" apt-get update -q >>/tmp/mdm-native-libs.log 2>&1 && install >>/tmp/mdm-native-libs.log 2>&1; }; then
  say 'installed'
else
  say "apt-get could not install them (log: /tmp/mdm-native-libs.log); the built-in kernels run (slower), in one process"
fi
exit 0
