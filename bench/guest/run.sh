#!/usr/bin/env bash
# Runs a command of this checkout inside a throw-away KVM guest whose kernel
# we own, so that root there can raise the open-files limit past the host's
# hard RLIMIT_NOFILE (see bench/guest/README.md).
#
#   bench/guest/run.sh                      # BENCH_ONLY=idle100k BENCH_REPEATS=1 deno task bench
#   bench/guest/run.sh 'deno --version'     # any command, run from the checkout
#
# The guest sees the host's root filesystem read-only (virtio-9p), tmpfs on
# /tmp, /run and /dev/shm, an overlay (writes kept in RAM) on /root (so the
# host's DENO_DIR cache is used), and this checkout read-write at the same
# path, so files it writes (bench/results/) come back. The script exits with
# the command's exit status.
#
# Environment: GUEST_ACCEL (kvm or tcg; see below), GUEST_MEM (16G), GUEST_CPUS (2), GUEST_NOFILE (1048576),
# GUEST_CHECKOUT (the checkout holding this script), GUEST_WORK
# (/tmp/duplex-guest: kernel, busybox and initramfs, rebuilt as needed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "${GUEST_CHECKOUT:-$here/../..}" && pwd)
work=${GUEST_WORK:-/tmp/duplex-guest}
mem=${GUEST_MEM:-16G}
cpus=${GUEST_CPUS:-2}
# The accelerator: KVM, unless /dev/kvm is a PVM hypervisor (kvm_pvm, as in
# this project's Firecracker VMs), which only boots PVM-enabled guest kernels:
# a stock Debian kernel hangs right after "Probing EDD". Then TCG (emulation).
if [[ -z ${GUEST_ACCEL:-} ]]; then
  if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then GUEST_ACCEL=kvm; else GUEST_ACCEL=tcg; fi
fi
case $GUEST_ACCEL in
  # Nested under Firecracker, KVM refuses to set IA32_ARCH_CAPABILITIES (MSR 0x10a).
  kvm) accel=(-enable-kvm) cpu=${GUEST_CPU:-host,-arch-capabilities} ;;
  tcg) accel=(-accel tcg,thread=multi) cpu=${GUEST_CPU:-max} ;;
  *) echo "guest: Cannot use GUEST_ACCEL=$GUEST_ACCEL: kvm or tcg" >&2; exit 2 ;;
esac
nofile=${GUEST_NOFILE:-1048576}
command=${1:-BENCH_ONLY=idle100k BENCH_REPEATS=1 deno task bench}
marker=DUPLEX-GUEST-EXIT

say() { echo "guest: $*" >&2; }

mkdir -p "$work"

# 1. Tools: qemu installed; the kernel and a static busybox unpacked in $work.
if ! command -v qemu-system-x86_64 >/dev/null; then
  say "installing qemu-system-x86"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2
fi
fetch_deb() { # package, directory to unpack into
  [[ -d $2 ]] && return
  local tmp=$work/deb
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && apt-get download "$1" >&2 2>/dev/null) ||
    { apt-get update -qq && (cd "$tmp" && apt-get download "$1" >&2); }
  dpkg -x "$tmp"/*.deb "$2.part" && mv "$2.part" "$2"
  rm -rf "$tmp"
}
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
if [[ -z $kernel_pkg ]]; then
  apt-get update -qq
  kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
fi
release=${kernel_pkg#linux-image-}
fetch_deb "$kernel_pkg" "$work/kernel-$release"
fetch_deb busybox-static "$work/busybox"
kroot=$work/kernel-$release
vmlinuz=$kroot/boot/vmlinuz-$release
moddir=$kroot/lib/modules/$release

# 2. The initramfs: busybox, the 9p/virtio/overlay modules (in dependency
# order), the init script and the command.
initrd=$work/initrd
rm -rf "$initrd" && mkdir -p "$initrd"/{bin,modules,proc,sys,dev,newroot}
cp "$work/busybox/bin/busybox" "$initrd/bin/busybox"
declare -A loaded=()
order=()
add_module() {
  local name=$1 file dep
  [[ -n ${loaded[$name]:-} ]] && return
  loaded[$name]=1
  if grep -q "/$name.ko" "$moddir/modules.builtin"; then return; fi
  file=$(find "$moddir/kernel" -name "$name.ko*" -print -quit)
  [[ -n $file ]] || { say "Cannot find module $name in $moddir"; exit 2; }
  case $file in
    *.ko.xz) xz -dc "$file" >"$initrd/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$file" >"$initrd/modules/$name.ko" ;;
    *) cp "$file" "$initrd/modules/$name.ko" ;;
  esac
  for dep in $(tr '\0' '\n' <"$initrd/modules/$name.ko" | sed -n 's/^depends=//p' | tr , ' '); do
    add_module "$dep"
  done
  order+=("$name")
}
for module in virtio_pci 9pnet_virtio 9p overlay; do add_module "$module"; done
printf '%s\n' "${order[@]}" >"$initrd/modules.order"
printf '%s\n' "$command" >"$initrd/command"
cat >"$initrd/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in \$(cat /modules.order); do
  insmod /modules/\$module.ko || echo "guest: insmod \$module failed"
done
R=/newroot
status=1
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot \$R; then
  mount -t tmpfs -o mode=1777 tmp \$R/tmp
  mount -t tmpfs run \$R/run
  mount -t proc proc \$R/proc
  mount -t sysfs sys \$R/sys
  mount -t devtmpfs dev \$R/dev
  mkdir -p \$R/dev/pts \$R/dev/shm \$R/tmp/.guest/up \$R/tmp/.guest/work
  mount -t devpts devpts \$R/dev/pts
  mount -t tmpfs -o mode=1777 shm \$R/dev/shm
  mount -t overlay overlay -o lowerdir=\$R/root,upperdir=\$R/tmp/.guest/up,workdir=\$R/tmp/.guest/work \$R/root ||
    { echo "guest: no overlay on /root, using an empty tmpfs"; mount -t tmpfs root \$R/root; }
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 checkout \$R$checkout
  cp /command \$R/tmp/.guest/command
  ip link set lo up
  sysctl -qw fs.nr_open=$((nofile + 1024)) fs.file-max=$((nofile * 4))
  sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
  echo "guest: \$(uname -r), \$(nproc) CPUs, nr_open \$(cat /proc/sys/fs/nr_open)"
  free -m
  # A line a minute: progress, and the memory the workload takes.
  (while sleep 60; do echo "guest: \$(cut -d' ' -f1 /proc/uptime) s up, load \$(cut -d' ' -f1-3 /proc/loadavg), \$(free -m | awk 'NR==2 { print \$3 }') MiB used"; done) &
  ticker=\$!
  chroot \$R /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    NO_COLOR=1 TERM=dumb /bin/bash -c \
    'ulimit -Hn $nofile && ulimit -Sn $nofile && cd "$checkout" && echo "guest: ulimit -n \$(ulimit -n)" && . /tmp/.guest/command'
  status=\$?
  kill \$ticker
  echo "guest: memory after the command"
  free -m
  sync
  umount \$R$checkout
fi
echo "$marker=\$status"
poweroff -f
INIT
chmod +x "$initrd/init"
(cd "$initrd" && find . | "$initrd/bin/busybox" cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"

# 3. Boot, stream the console, exit with the command's status.
say "booting $release ($GUEST_ACCEL), $cpus CPUs, $mem, checkout $checkout: $command"
log=$work/console.log
started=$(date +%s)
qemu-system-x86_64 "${accel[@]}" -cpu "$cpu" -smp "$cpus" -m "$mem" -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 panic=-1 random.trust_cpu=on quiet" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$checkout,mount_tag=checkout,security_model=none,multidevs=remap" \
  </dev/null | tee "$log"
say "guest ran $(($(date +%s) - started)) s"
status=$(tr -d '\r' <"$log" | sed -n "s/^$marker=\([0-9]*\)$/\1/p" | tail -1)
[[ -n $status ]] || { say "Cannot read the command's exit status: the guest stopped early"; exit 3; }
exit "$status"
