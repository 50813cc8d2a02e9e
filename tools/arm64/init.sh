#!/bin/busybox sh
# /init of the arm64 initramfs that tools/arm64/run.sh boots under
# qemu-system-aarch64 (-M virt,virtualization=on: the kernel starts at EL2
# and /dev/kvm is real KVM/arm64). It runs what /etc/kvmspec.conf asks,
# writes every output into /tmp/out, sends that directory as a gzipped tar
# through the virtio serial port named kvmspec.out, and powers off. Each
# step has its own timeout, so a hang still brings the rest back.
/bin/busybox mkdir -p /proc /sys /dev /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/kvmspec:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
export HOME=/tmp TMPDIR=/tmp

# Defaults; /etc/kvmspec.conf (written by run.sh) overrides them.
UNIT_TIMEOUT=300
SUITE_TIMEOUT=600
BENCH=
BENCHTIME=100x
UNITS=1
SUITES=1
MEMSLOT_BENCH=0
MEMSLOT_ROUNDS=200
MEMSLOT_SLOTS="1 8 64 512 4096 max"
MEMSLOT_TIMEOUT=900
MEMSLOT_REPEAT=1
MEMSLOT_PROFILE=0
. /etc/kvmspec.conf

out=/tmp/out
mkdir -p "$out"
say() { echo "kvmspec-arm64: $*"; }
up() { cut -d' ' -f1 /proc/uptime; }

# step NAME TIMEOUT CMD...: runs CMD with stdout+stderr in $out/NAME.txt and
# records "NAME rc start end" (uptime seconds) in $out/steps.txt.
step() {
	name=$1 limit=$2
	shift 2
	t0=$(up)
	timeout "$limit" "$@" >"$out/$name.txt" 2>&1
	rc=$?
	t1=$(up)
	echo "$name $rc $t0 $t1" >>"$out/steps.txt"
	say "$name: exit $rc ($t0 s -> $t1 s)"
}

kvm=missing
[ -c /dev/kvm ] && kvm=present
say "up at $(up) s: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, /dev/kvm $kvm"
{
	echo "boot $(up)"
	echo "kernel $(uname -r)"
	echo "kvm $kvm"
	[ "$SUITES" = 1 ] || echo "suites off"
} >"$out/guest.txt"
cat /proc/cpuinfo >"$out/cpuinfo.txt"

# port NAME: the device of the virtio serial port named NAME, or nothing.
port() {
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/$(basename "$p")" && return
	done
}
# The kernel's symbols go to the host at once (kvmspec.early): if this
# kernel hangs later, run.sh's hang report names the hung CPUs' code with
# them (tools/arm64/hang.go); nothing sent at the end would arrive.
early=$(port kvmspec.early)
if [ -n "$early" ]; then
	echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
	gzip -1 </proc/kallsyms >"$early" &
fi

step caps 120 kvmspec caps
for t in /kvmspec/tests/*.test; do
	[ -e "$t" ] && [ "$UNITS" = 1 ] || continue
	n=$(basename "$t" .test)
	# go test runs a package's tests in its directory (testdata/ there).
	cd "/kvmspec/tests/$n" 2>/dev/null || cd /tmp
	step "unit-$n" "$UNIT_TIMEOUT" "$t" -test.v -test.count=1 -test.timeout "${UNIT_TIMEOUT}s"
	if [ -n "$BENCH" ]; then
		step "bench-$n" "$UNIT_TIMEOUT" "$t" -test.v -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME"
	fi
done

# make bench-arm64: the memslot update benchmark in Go (suites/memslot
# BenchmarkUpdate/kvm) and in C (tools/refbench/memslot.c), one slot count
# at a time, MEMSLOT_REPEAT pairs, so both see the same load at each count
# (compare-memslot.sh takes the median of the pairs' ratios). The order
# alternates, C then Go, Go then C, ...: with one order only, a load that
# rises through the run (a build starting beside QEMU) counted against
# the language that always ran second.
# MEMSLOT_PROFILE=1: a CPU profile of each Go run, memslot-go-<n>.prof.
memslot_c() { step "memslot-c-$2" "$MEMSLOT_TIMEOUT" /kvmspec/bench/refbench-memslot "$MEMSLOT_ROUNDS" "$1"; }
memslot_go() {
	# shellcheck disable=SC2086 # $3: the profile flag or nothing
	step "memslot-go-$2" "$MEMSLOT_TIMEOUT" /kvmspec/bench/memslot.test -test.run '^$' -test.bench 'Update/kvm' \
		-test.benchtime "${MEMSLOT_ROUNDS}x" -memslot.slots="$1" $3
}
if [ "$MEMSLOT_BENCH" = 1 ]; then
	cd /tmp
	for n in $MEMSLOT_SLOTS; do
		r=1
		while [ "$r" -le "$MEMSLOT_REPEAT" ]; do
			sfx=$n
			[ "$r" = 1 ] || sfx=$n-r$r
			prof=
			[ "$MEMSLOT_PROFILE" != 1 ] || prof="-test.cpuprofile=$out/memslot-go-$sfx.prof"
			if [ $((r % 2)) = 1 ]; then
				memslot_c "$n" "$sfx"
				memslot_go "$n" "$sfx" "$prof"
			else
				memslot_go "$n" "$sfx" "$prof"
				memslot_c "$n" "$sfx"
			fi
			r=$((r + 1))
		done
	done
fi

cd /tmp
# The suites' arguments, one per line (label filters hold spaces).
set --
if [ -f /etc/kvmspec.args ]; then
	while IFS= read -r a; do set -- "$@" "$a"; done </etc/kvmspec.args
fi
# Each spec's start and end go to the kernel log (printk.devkmsg=on lifts
# its rate limit), so the console says which spec a hang happened in.
[ "$SUITES" != 1 ] || step suites "$SUITE_TIMEOUT" kvmspec run --backend all --report-dir "$out/suites" --progress-file /dev/kmsg "$@"
dmesg >"$out/dmesg.txt"
echo "done $(up)" >>"$out/guest.txt"

wait # the symbols sent
port=$(port kvmspec.out)
if [ -n "$port" ]; then
	tar -c -C "$out" . | gzip -1 >"$port" && say "results sent through $port at $(up) s"
else
	say "no virtio port named kvmspec.out: results not sent"
fi
sync
poweroff -f
