#!/usr/bin/env bash
# Installs the two optional libraries the `native` backend loads at run time (OpenBLAS for matrix
# products, oneDNN 2.x for convolutions), where Debian/Ubuntu's apt can: with them the default
# model's training step ran 1.8× faster than on the addon's built-in kernels (docs/performance.md).
# Never fails: without apt, root or sudo it says what to install and everything runs on the
# built-in kernels. MDM_NO_SYSTEM_PACKAGES=1 skips it.
set -u
say() { echo "[native-libs] $*"; }
have() { ldconfig -p 2>/dev/null | grep -q "$1"; }

if have libopenblas.so.0 && have libdnnl.so.2; then
  say 'OpenBLAS and oneDNN are installed'
  exit 0
fi
if [ "${MDM_NO_SYSTEM_PACKAGES:-}" = 1 ]; then
  say 'MDM_NO_SYSTEM_PACKAGES=1: not installing OpenBLAS/oneDNN; the built-in kernels will run (slower)'
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  say 'no apt-get here: install OpenBLAS (libopenblas.so.0) and oneDNN 2.x (libdnnl.so.2) from your' \
    'system packages for faster training; until then the built-in kernels run'
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  say 'for faster training run: sudo apt-get install -y libopenblas0 libdnnl2' \
    '(not done: no root or password-less sudo); the built-in kernels run until then'
  exit 0
fi
packages=(libopenblas0 libdnnl2)
say "installing ${packages[*]} with apt-get (optional, ~30 MB; MDM_NO_SYSTEM_PACKAGES=1 skips it)"
install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; }
if install >/tmp/mdm-native-libs.log 2>&1 ||
  { "${sudo[@]}" apt-get update -q >>/tmp/mdm-native-libs.log 2>&1 && install >>/tmp/mdm-native-libs.log 2>&1; }; then
  say 'installed'
else
  say "apt-get could not install them (log: /tmp/mdm-native-libs.log); the built-in kernels will run (slower)"
fi
exit 0
