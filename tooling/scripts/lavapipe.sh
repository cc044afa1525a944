#!/usr/bin/env bash
# A software Vulkan driver (Mesa's lavapipe) for the tests of ONNX Runtime's WebGPU provider on a
# machine without a GPU. ONNX Runtime's built-in Dawn reaches adapters through Vulkan only (no
# OpenGL), and rejects lavapipe before Mesa 23 (it lacks shaderSampledImageArrayDynamicIndexing):
# Debian 12's mesa-vulkan-drivers is Mesa 22.3. There this fetches bookworm-backports' package with
# apt-get on a private package list (nothing on the system is installed or changed) and keeps its
# libvulkan_lvp.so with an ICD file in ${XDG_CACHE_HOME:-~/.cache}/matryoshka-ts/lavapipe; the tests
# add it to the Vulkan loader's drivers (VK_ADD_DRIVER_FILES, test-utils' softwareVulkan). Needs the
# Vulkan loader (libvulkan1, which native-libs.sh installs). Never fails; MDM_NO_SYSTEM_PACKAGES=1 skips it.
set -u
say() { echo "[lavapipe] $*"; }
dir="${XDG_CACHE_HOME:-$HOME/.cache}/matryoshka-ts/lavapipe"

if [ -f "$dir/lvp_icd.json" ]; then
  say "already in $dir"
  exit 0
fi
system=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if [ -n "$system" ] && [ "${system%%.*}" -ge 23 ] 2>/dev/null; then
  say "the system's lavapipe (Mesa $system) is recent enough"
  exit 0
fi
if [ "${MDM_NO_SYSTEM_PACKAGES:-}" = 1 ]; then
  say 'MDM_NO_SYSTEM_PACKAGES=1: not fetching lavapipe; the ONNX WebGPU tests skip without an adapter'
  exit 0
fi
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
arch=$(dpkg --print-architecture 2>/dev/null || true)
if [ "$codename" != bookworm ] || [ "$arch" != amd64 ] || ! command -v apt-get >/dev/null; then
  say "for a software Vulkan adapter install Mesa ≥ 23's lavapipe (mesa-vulkan-drivers) from your system's" \
    'packages; until then the ONNX WebGPU tests skip where no adapter is found'
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$work/sources.list"
apt=(apt-get -q -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
  -o "APT::Sandbox::User=$(id -un)")
say "fetching bookworm-backports' mesa-vulkan-drivers (~11 MB; nothing is installed) into $dir"
if ! { "${apt[@]}" update && (cd "$work" && "${apt[@]}" download mesa-vulkan-drivers); } >"$work/log" 2>&1; then
  tail -5 "$work/log"
  say 'could not fetch it; the ONNX WebGPU tests skip without an adapter'
  exit 0
fi
dpkg-deb -x "$work"/mesa-vulkan-drivers_*.deb "$work/root"
lib="$work/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
manifest="$work/root/usr/share/vulkan/icd.d/lvp_icd.json"
if [ ! -f "$lib" ] || [ ! -f "$manifest" ]; then
  say 'the package holds no libvulkan_lvp.so; the ONNX WebGPU tests skip without an adapter'
  exit 0
fi
api=$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$manifest")
mkdir -p "$dir"
cp "$lib" "$dir/libvulkan_lvp.so"
printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "%s"}}\n' \
  "$dir/libvulkan_lvp.so" "${api:-1.3.0}" >"$dir/lvp_icd.json"
say "lavapipe $(basename "$work"/mesa-vulkan-drivers_*.deb .deb | cut -d_ -f2) is in $dir"
exit 0
