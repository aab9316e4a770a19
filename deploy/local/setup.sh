#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine for flowscope: Debian packages, the kernel-header link bcc needs,
# the venv with pinned Python dependencies, and the generated protobuf code. Idempotent: every step
# checks before it acts, so `make demo` and `make test` can both call it on every run.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${FLOWSCOPE_VENV:-$here/.venv}
stamp_dir=$venv/.flowscope-stamps

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, kernel headers, BPF); run it with sudo"

# Debian packages: the datapath (bcc, headers, bpftool), lab tools (iproute2, servers, clients),
# the real servers tests talk to (ClickHouse, Prometheus, Chromium) and the venv's base python.
debs=(
  python3 python3-venv python3-dev python3-bpfcc bpftool linux-headers-amd64
  iproute2 iputils-ping nftables procps psmisc curl dnsutils dnsmasq-base redis-server redis-tools
  nginx-light iperf3 wrk hey nghttp2-client tshark tcpdump python3-grpcio
  clickhouse-server clickhouse-client zookeeperd prometheus chromium chromium-driver
)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
  # Debian starts these on install; flowscope's tests start their own instances on their own ports.
  for svc in clickhouse-server prometheus zookeeper redis-server nginx; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# bcc compiles against /lib/modules/$(uname -r)/build. No headers ship for this kernel, so point it at
# Debian's (UAPI headers match; kernel struct offsets come from BTF, see bpf/README.md).
mod=/lib/modules/$(uname -r)
if [ ! -e "$mod/build/include/linux/kconfig.h" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
  [ -n "$hdr" ] && [ -n "$common" ] || die "kernel headers missing: install linux-headers-amd64"
  mkdir -p "$mod"
  ln -sfn "$hdr" "$mod/build"
  ln -sfn "$common" "$mod/source"
  say "linked $mod/build -> $hdr"
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true

# The venv comes from Debian's python3 so that its site packages (bcc) are visible.
if [ ! -x "$venv/bin/python" ]; then
  say "creating venv $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
mkdir -p "$stamp_dir"
req_hash=$(sha256sum "$here/pyproject.toml" | cut -c1-16)
if [ ! -e "$stamp_dir/deps-$req_hash" ]; then
  say "installing Python dependencies into $venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -e "$here[dev]" || die "pip install failed (see above)"
  rm -f "$stamp_dir"/deps-*
  touch "$stamp_dir/deps-$req_hash"
fi


"$venv/bin/python" -c "import bcc" 2>/dev/null || die "bcc does not import from $venv (python3-bpfcc)"
say "ready ($venv)"
