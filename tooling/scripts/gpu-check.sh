#!/usr/bin/env bash
# The GPU check (bench/src/gpu-check.ts, docs/performance.md "On a GPU"), for a machine with an
# NVIDIA GPU and neither network nor Node.js (the lent device machine: x86-64, python3, no npm).
#
#   bash tooling/scripts/gpu-check.sh pack [--no-fid] [--no-native-libs]
#     Here, with the workspace installed (pnpm install) and network: gathers into .gpu-check/
#     (git-ignored) everything the check needs: this machine's node (stripped, xz), the check
#     bundled into two files with tfjs and our packages (tooling/scripts/gpu-check-bundle.mjs),
#     the webgpu package's dawn.node, the native addon, the ml-mdm fixture folders, Debian's
#     Vulkan loader with glvnd (unpacked there only where the machine has no libvulkan.so.1),
#     OpenBLAS and oneDNN for `native` (kept in the check's own folder), and onnxruntime-node's
#     Linux x64 library for the FID throughput (--no-fid leaves it out). Prints every size.
#   bash tooling/scripts/gpu-check.sh run [gpu-check options: --small, --skip …, --budget-s …]
#     There (the tree with .gpu-check/ carried): unpacks into ${MDM_GPU_CHECK_WORK:-/tmp/mdm-gpu-check}
#     with xz or python3, brings the Vulkan loader where none is installed, points Vulkan at the
#     NVIDIA driver's ICD where no other is registered, and runs the check on Dawn's Vulkan
#     backend (MDM_WEBGPU_BACKEND, default vulkan; opengl runs it on Mesa's llvmpipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=${MDM_GPU_CHECK_PACK:-.gpu-check}
say() { echo "[gpu-check] $*"; }
size() { du -b "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# Debian packages: the Vulkan loader and glvnd (the device README's list: NVIDIA's Vulkan driver
# lives in libGLX_nvidia, which needs libGLdispatch), and `native`'s libraries with theirs.
LOADERS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
NATIVE_LIBS=(libopenblas0-pthread libgfortran5 libquadmath0 libdnnl2 libgomp1 ocl-icd-libopencl1)

do_pack() {
  local fid=1 native=1
  for a in "$@"; do
    case $a in
      --no-fid) fid=0 ;;
      --no-native-libs) native=0 ;;
      *) echo "unknown pack option $a" >&2; exit 2 ;;
    esac
  done
  local node_bin fixtures
  node_bin=$(command -v node) || { echo 'pack needs node (the one copied into the pack)' >&2; exit 1; }
  fixtures=${MDM_FIXTURES_DIR:-../shared/fixtures/ml-mdm}
  [ -d "$fixtures" ] || { echo "no ml-mdm fixtures at $fixtures (set MDM_FIXTURES_DIR)" >&2; exit 1; }
  [ "$(uname -m)" = x86_64 ] || say "warning: this is $(uname -m); the GPU machine is x86-64: node and the addons must be built for it"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  rm -rf "$pack" && mkdir -p "$pack"

  say 'bundling the check (esbuild)'
  node tooling/scripts/gpu-check-bundle.mjs "$stage/check" $([ $fid = 1 ] && echo --fid)

  say "copying the fixture folders from $fixtures"
  local kind dir name
  for kind in ml-mdm ml-mdm-video; do
    for dir in "$fixtures/../$kind"/*/; do
      [ -f "$dir/config.json" ] || continue
      name=$(basename "$dir")
      mkdir -p "$stage/check/fixtures/$kind/$name"
      # What the model, loss and sampler suites read (schedule.safetensors is the schedule suite's).
      for f in config.json weights.safetensors io.safetensors loss.safetensors sampler.safetensors; do
        [ -f "$dir/$f" ] && cp "$dir/$f" "$stage/check/fixtures/$kind/$name/"
      done
    done
  done

  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    say 'fetching Debian packages (amd64): the Vulkan loader, and OpenBLAS + oneDNN for native'
    local lists=$stage/apt-lists debs=$stage/debs
    mkdir -p "$lists/partial" "$debs/loaders" "$debs/native"
    local o=(-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o "Dir::State::Lists=$lists"
      -o "APT::Sandbox::User=$(id -un)")
    apt-get -qq "${o[@]}" update >/dev/null
    (cd "$debs/loaders" && apt-get -qq "${o[@]}" download "${LOADERS[@]}" >/dev/null 2>&1)
    # Unpacked here, so that the GPU machine needs neither dpkg nor ar: loaders.tar goes to / there.
    mkdir -p "$stage/loaders"
    for f in "$debs"/loaders/*.deb; do dpkg-deb -x "$f" "$stage/loaders"; done
    tar -C "$stage/loaders" -cf - usr | xz -9 -T0 >"$pack/loaders.tar.xz"
    if [ $native = 1 ]; then
      (cd "$debs/native" && apt-get -qq "${o[@]}" download "${NATIVE_LIBS[@]}" >/dev/null 2>&1)
      for f in "$debs"/native/*.deb; do dpkg-deb -x "$f" "$stage/check/sys"; done
      # The addon opens libopenblas.so.0 and libdnnl.so.2 alone: not the BLAS and LAPACK fronts.
      rm -rf "$stage/check/sys/usr/share" "$stage/check/sys/usr/lib/x86_64-linux-gnu/openblas-pthread"/lib{blas,lapack}.so.3
    fi
  else
    say 'no apt-get here: no Vulkan loader packed (the GPU machine must have one), native without OpenBLAS/oneDNN'
  fi

  say 'compressing (xz -9; the shared libraries apart, through the x86 filter)'
  (cd "$stage/check" && find . \( -name '*.so*' -o -name '*.node' \) \( -type f -o -type l \) | sort >../binaries)
  tar -C "$stage/check" -cf - -T "$stage/binaries" | xz --x86 --lzma2=preset=9 -T0 >"$pack/binaries.tar.xz"
  tar -C "$stage/check" -cf - -X "$stage/binaries" . | xz -9 -T0 >"$pack/check.tar.xz"
  cp "$node_bin" "$stage/node"
  command -v strip >/dev/null && strip "$stage/node"
  xz --x86 --lzma2=preset=9 -T0 -c "$stage/node" >"$pack/node.xz"

  local total=0 f s
  for f in "$pack"/*; do
    s=$(size "$f")
    total=$((total + s))
    say "  $(basename "$f"): $(mib "$s")"
  done
  local tree
  tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null || true) | awk 'END { print $1 }')
  say "pack: $(mib "$total"); with the working tree ($(mib "${tree:-0}")): $(mib $((total + ${tree:-0}))) of the 64 MiB a run may carry"
  say "unpacked: check $(mib "$(du -sb "$stage/check" | cut -f1)"), node $(mib "$(size "$stage/node")")"
  if [ $((total + ${tree:-0})) -gt $((64 * 1048576)) ]; then
    say 'over 64 MiB: pack again with --no-fid (or --no-native-libs)'
    exit 1
  fi
}

# Unpacks an .xz file or a .tar.xz with xz, else with python3's lzma.
unxz_to() { if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi; }
untar_xz() {
  if command -v xz >/dev/null; then xz -dc "$1" | tar --no-overwrite-dir -C "$2" -xf -
  else python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$1" "$2"; fi
}
has_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

do_run() {
  [ -f "$pack/check.tar.xz" ] && [ -f "$pack/binaries.tar.xz" ] && [ -f "$pack/node.xz" ] || {
    echo "no pack in $pack: run 'bash tooling/scripts/gpu-check.sh pack' first, and carry $pack" >&2
    exit 1
  }
  local work=${MDM_GPU_CHECK_WORK:-/tmp/mdm-gpu-check} t0=$SECONDS
  rm -rf "$work" && mkdir -p "$work/bin"
  unxz_to "$pack/node.xz" "$work/bin/node" && chmod +x "$work/bin/node"
  untar_xz "$pack/check.tar.xz" "$work"
  untar_xz "$pack/binaries.tar.xz" "$work"
  say "unpacked into $work in $((SECONDS - t0)) s; node $("$work/bin/node" --version)"

  export MDM_WEBGPU_BACKEND=${MDM_WEBGPU_BACKEND:-vulkan}
  if [ "$MDM_WEBGPU_BACKEND" = vulkan ]; then
    # The device README: where ldconfig knows no libvulkan, bring the loaders (into /, as dpkg -x).
    if ! has_lib libvulkan.so.1; then
      if [ -f "$pack/loaders.tar.xz" ]; then
        say 'no Vulkan loader installed: unpacking the packed one (libvulkan1, glvnd) into /'
        untar_xz "$pack/loaders.tar.xz" /
        ldconfig
      else
        say 'no Vulkan loader installed and none packed: Dawn will find no adapter'
      fi
    fi
    # NVIDIA's Vulkan ICD where the loader's usual folders name none.
    local nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv" ] &&
      ! grep -qs nvidia /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json; then
      export VK_DRIVER_FILES=$nv
      [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] &&
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
      say "VK_DRIVER_FILES=$nv"
    fi
  fi
  # OpenBLAS and oneDNN for native, from the check's folder; the system's copy of a library wins.
  local lib=$work/sys/usr/lib/x86_64-linux-gnu
  if [ -d "$lib" ]; then
    for f in libgomp.so.1 libgfortran.so.5 libquadmath.so.0 libOpenCL.so.1; do
      if has_lib "$f"; then rm -f "$lib/$f"*; fi
    done
    export LD_LIBRARY_PATH="$lib/openblas-pthread:$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  export MDM_FIXTURES_DIR=$work/fixtures/ml-mdm
  command -v nvidia-smi >/dev/null &&
    say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  "$work/bin/node" "$work/app/gpu-check.mjs" "$@"
}

case ${1:-} in
  pack) shift; do_pack "$@" ;;
  run) shift; do_run "$@" ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
