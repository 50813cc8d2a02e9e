#!/usr/bin/env bash
# make test-arm64: kvmspec on real KVM/arm64, from an x86-64 host.
#
# Boots Debian's arm64 kernel with qemu-system-aarch64 -M virt,
# virtualization=on (the kernel starts at EL2, so /dev/kvm inside is real
# KVM/arm64 running under QEMU's TCG), from an initramfs holding busybox,
# the arm64 kvmspec binary and the arm64 unit-test binaries of
# ARM64_TEST_PKGS. Inside it runs `kvmspec caps`, the unit tests (and
# ARM64_BENCH benchmarks), then `kvmspec run --backend all`; the results
# come back through a virtio serial port as a gzipped tar, and
# `go run ./tools/arm64 collect` writes them into $ARM64_OUT: junit.xml,
# report.json, report.ktap (backends named kvm-arm64 and emu-arm64),
# unit.xml, console.log and the guest's own files under guest/.
#
# Exit 0 when everything inside passed, or when the stage cannot run here
# (one "test-arm64: skipped: <reason>" line; ARM64_REQUIRE=1 makes that a
# failure); 1 when anything inside failed or did not finish.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
CACHE=${ARM64_CACHE:-.cache/arm64}
OUT=${ARM64_OUT:-reports/out/arm64}
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
# bookworm-backports has 6.12, the first Debian kernel with the arm64
# dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL); bookworm has 6.1.
KERNEL_SUITE=${ARM64_KERNEL_SUITE:-bookworm-backports}
# Packages whose arm64 tests run inside (those missing from this tree are
# left out: a64guest's runs arm64 guests on the real vCPUs there).
TEST_PKGS=${ARM64_TEST_PKGS:-./harness/kvm/ ./harness/hv/ ./harness/guest/a64guest/}
SMP=${ARM64_SMP:-2}
MEM=${ARM64_MEM:-2G}
TIMEOUT=${ARM64_TIMEOUT:-1080}           # the whole boot, seconds
UNIT_TIMEOUT=${ARM64_UNIT_TIMEOUT:-180}  # each unit-test binary inside
SUITE_TIMEOUT=${ARM64_SUITE_TIMEOUT:-900}  # 2.5 times the slowest measured (352 s, loaded)
BENCH=${ARM64_BENCH-VMCreateDestroy|RoundTrip}
BENCHTIME=${ARM64_BENCHTIME:-200x}
LABELS=${ARM64_LABELS-}                  # --label-filter of the suite run
SUITE_ARGS=${ARM64_SUITE_ARGS-}          # more kvmspec run flags, split on spaces
UNITS=${ARM64_UNITS:-1}                  # 0: no unit tests or ARM64_BENCH inside
SUITES=${ARM64_SUITES:-1}                # 0: no kvmspec run inside
# make bench-arm64: the memslot update cost, Go harness beside C, on real
# KVM/arm64 (README "Real KVM/arm64"); off in make test and test-arm64.
MEMSLOT_BENCH=${ARM64_MEMSLOT_BENCH:-0}
MEMSLOT_ROUNDS=${ARM64_MEMSLOT_ROUNDS:-200}
MEMSLOT_SLOTS=${ARM64_MEMSLOT_SLOTS:-1 8 64 512 4096 max}
MEMSLOT_TIMEOUT=${ARM64_MEMSLOT_TIMEOUT:-900}  # each count, each language
MEMSLOT_REPEAT=${ARM64_MEMSLOT_REPEAT:-1}      # C+Go pairs per count
MEMSLOT_PROFILE=${ARM64_MEMSLOT_PROFILE:-0}    # 1: CPU profiles of the Go runs
ARM64_CC=${ARM64_CC:-aarch64-linux-gnu-gcc}

case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac # apt's Dir wants it absolute
t_stage=$(date +%s.%N)
say() { echo "test-arm64: $*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
skip() {
	say "skipped: $*"
	if [ "${ARM64_REQUIRE:-0}" = 1 ]; then exit 1; fi
	exit 0
}
die() {
	say "FAIL: $*"
	exit 1
}

# as_root CMD...: runs CMD as root (directly or through sudo -n), or fails.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}
can_apt() { command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; }; }
APT_HOST=(apt-get -q -y -o DPkg::Lock::Timeout=300)

qemu_major() { qemu-system-aarch64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'; }

# QEMU 7.2 (bookworm's) runs a nested guest's rewritten code page stale
# (47-50 of 50 VMs, once a kernel WARNING and a lockup); 10.0.2 is
# measured clean. On bookworm we install 10 from bookworm-backports.
install_qemu() {
	can_apt || return 1
	local id= codename=
	# shellcheck disable=SC1091
	[ -r /etc/os-release ] && { id=$(. /etc/os-release; echo "${ID:-}"); codename=$(. /etc/os-release; echo "${VERSION_CODENAME:-}"); }
	say "installing qemu-system-arm (Debian package) ..."
	local t0; t0=$(date +%s.%N)
	if [ "$id" = debian ] && [ "$codename" = bookworm ]; then
		local uri
		uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
		[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
		[ -n "$uri" ] || uri=$MIRROR
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
			as_root tee /etc/apt/sources.list.d/kvmspec-bookworm-backports.sources >/dev/null
		as_root "${APT_HOST[@]}" update >"$CACHE/apt-host.log" 2>&1 &&
			as_root "${APT_HOST[@]}" install --no-install-recommends -t bookworm-backports qemu-system-arm >>"$CACHE/apt-host.log" 2>&1
	else
		as_root "${APT_HOST[@]}" install --no-install-recommends qemu-system-arm >"$CACHE/apt-host.log" 2>&1 ||
			{ as_root "${APT_HOST[@]}" update >>"$CACHE/apt-host.log" 2>&1 &&
				as_root "${APT_HOST[@]}" install --no-install-recommends qemu-system-arm >>"$CACHE/apt-host.log" 2>&1; }
	fi || { say "apt-get failed (log: $CACHE/apt-host.log)"; return 1; }
	say "installed $(qemu-system-aarch64 --version | head -1) in $(since "$t0") s"
}

mkdir -p "$CACHE"
v=$(qemu_major)
if [ -z "$v" ] || [ "$v" -lt 8 ]; then
	install_qemu || true
	v=$(qemu_major)
fi
[ -n "$v" ] || skip "qemu-system-aarch64 not installed, and no root with apt-get to install qemu-system-arm"
[ "$v" -ge 8 ] || skip "qemu-system-aarch64 $v runs nested guests' rewritten code stale (measured on 7.2); install QEMU >= 8 (Debian: qemu-system-arm from bookworm-backports)"

# The arm64 kernel and busybox: Debian packages fetched with apt-get into
# a private apt tree under $CACHE (no root, the host's apt untouched),
# unpacked once and kept.
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
fetch_arm64() {
	local R=$CACHE/apt
	mkdir -p "$R/etc/apt/apt.conf.d" "$R/etc/apt/preferences.d" "$R/etc/apt/trusted.gpg.d" \
		"$R/var/lib/apt/lists/partial" "$R/var/cache/apt/archives/partial" "$R/var/lib/dpkg" "$CACHE/deb"
	touch "$R/var/lib/dpkg/status"
	if [ ! -r "$KEYRING" ]; then
		can_apt && as_root "${APT_HOST[@]}" install debian-archive-keyring >/dev/null 2>&1 || true
		[ -r "$KEYRING" ] || return 2
	fi
	printf 'deb [arch=arm64 signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" bookworm "$KEYRING" "$MIRROR" "$KERNEL_SUITE" |
		sort -u >"$R/etc/apt/sources.list"
	local apt=(-q -o "Dir=$R" -o "Dir::State::status=$R/var/lib/dpkg/status" -o APT::Architecture=arm64
		-o APT::Architectures=arm64 -o Debug::NoLocking=1 -o "Dir::Etc::trusted=$R/etc/apt/trusted.gpg"
		-o "Dir::Etc::trustedparts=$R/etc/apt/trusted.gpg.d" -o "APT::Sandbox::User=$(id -un)"
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false)
	apt-get "${apt[@]}" update >"$CACHE/apt.log" 2>&1 || return 1
	# The kernel: whatever linux-image-arm64 of the suite depends on now
	# (old ABI versions leave the mirror).
	local kpkg
	kpkg=$(apt-cache "${apt[@]}" show "linux-image-arm64/$KERNEL_SUITE" 2>>"$CACHE/apt.log" | sed -n 's/^Depends: \([^ ,]*\).*/\1/p' | head -1)
	[ -n "$kpkg" ] || return 1
	rm -f "$CACHE"/deb/*.deb
	(cd "$CACHE/deb" && apt-get "${apt[@]}" download "$kpkg/$KERNEL_SUITE" busybox-static) >>"$CACHE/apt.log" 2>&1 || return 1
	rm -rf "$CACHE/x" && mkdir -p "$CACHE/x"
	for d in "$CACHE"/deb/*.deb; do dpkg-deb -x "$d" "$CACHE/x" || return 1; done
	cp "$CACHE"/x/boot/vmlinuz-* "$CACHE/vmlinuz" && cp "$CACHE"/x/boot/config-* "$CACHE/kernel.config" &&
		cp "$CACHE/x/bin/busybox" "$CACHE/busybox" || return 1
	echo "$kpkg" >"$CACHE/kernel.txt"
	rm -rf "$CACHE/x" "$CACHE"/deb/*.deb
}
if [ "${ARM64_REFRESH:-0}" = 1 ] || [ ! -s "$CACHE/vmlinuz" ] || [ ! -s "$CACHE/busybox" ] || [ ! -s "$CACHE/kernel.txt" ]; then
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "no apt-get/dpkg-deb to fetch the arm64 kernel and busybox-static Debian packages"
	t0=$(date +%s.%N)
	rc=0
	fetch_arm64 || rc=$?
	[ "$rc" != 2 ] || skip "no $KEYRING (debian-archive-keyring) to verify Debian's arm64 packages"
	[ "$rc" = 0 ] || skip "could not fetch the arm64 kernel and busybox-static from $MIRROR (log: $CACHE/apt.log)"
	say "fetched $(cat "$CACHE/kernel.txt") and busybox-static:arm64 in $(since "$t0") s"
fi

# The C reference of the memslot benchmark is cross-compiled: gcc for
# aarch64 from Debian's gcc-aarch64-linux-gnu, installed where we may.
if [ "$MEMSLOT_BENCH" = 1 ] && ! command -v "$ARM64_CC" >/dev/null; then
	if can_apt; then
		say "installing gcc-aarch64-linux-gnu (Debian package) for the C reference ..."
		as_root "${APT_HOST[@]}" install --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >"$CACHE/apt-cc.log" 2>&1 ||
			{ as_root "${APT_HOST[@]}" update >>"$CACHE/apt-cc.log" 2>&1 &&
				as_root "${APT_HOST[@]}" install --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >>"$CACHE/apt-cc.log" 2>&1; } || true
	fi
	command -v "$ARM64_CC" >/dev/null || skip "no $ARM64_CC for the C memslot reference (apt-get install gcc-aarch64-linux-gnu)"
fi

# The arm64 binaries and the initramfs.
t0=$(date +%s.%N)
# Each run builds in a directory of its own (the cache holds only what
# is fetched): two stages at once, e.g. make test in two checkouts
# sharing ARM64_CACHE, must not remove or overwrite each other's
# initramfs and results while their QEMUs read them.
B=$(mktemp -d "${TMPDIR:-/tmp}/kvmspec-arm64.XXXXXX")
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/tests"
GOARCH=arm64 CGO_ENABLED=0 $GO build -trimpath -o "$B/kvmspec" ./tools/kvmspec
[ "$UNITS" = 1 ] || TEST_PKGS=
pkgs=()
for p in $TEST_PKGS; do
	if [ -d "$p" ]; then pkgs+=("$p"); fi
done
[ ${#pkgs[@]} = 0 ] || GOARCH=arm64 CGO_ENABLED=0 $GO test -c -trimpath -o "$B/tests/" "${pkgs[@]}"
$GO build -o "$B/arm64" ./tools/arm64
{
	echo "UNIT_TIMEOUT=$UNIT_TIMEOUT"
	echo "SUITE_TIMEOUT=$SUITE_TIMEOUT"
	echo "BENCH='$BENCH'"
	echo "BENCHTIME=$BENCHTIME"
	echo "UNITS=$UNITS"
	echo "SUITES=$SUITES"
	echo "MEMSLOT_BENCH=$MEMSLOT_BENCH"
	echo "MEMSLOT_ROUNDS=$MEMSLOT_ROUNDS"
	echo "MEMSLOT_SLOTS='$MEMSLOT_SLOTS'"
	echo "MEMSLOT_TIMEOUT=$MEMSLOT_TIMEOUT"
	echo "MEMSLOT_REPEAT=$MEMSLOT_REPEAT"
	echo "MEMSLOT_PROFILE=$MEMSLOT_PROFILE"
} >"$B/kvmspec.conf"
{
	if [ -n "$LABELS" ]; then printf -- '--label-filter\n%s\n' "$LABELS"; fi
	for a in $SUITE_ARGS; do printf '%s\n' "$a"; done
} >"$B/kvmspec.args"
extra=("kvmspec/kvmspec=$B/kvmspec" "etc/kvmspec.conf=$B/kvmspec.conf" "etc/kvmspec.args=$B/kvmspec.args")
for t in "$B"/tests/*.test; do
	[ -e "$t" ] && extra+=("kvmspec/tests/$(basename "$t")=$t")
done
if [ "$MEMSLOT_BENCH" = 1 ]; then
	mkdir -p "$B/bench"
	GOARCH=arm64 CGO_ENABLED=0 $GO test -c -trimpath -o "$B/bench/memslot.test" ./suites/memslot/
	"$ARM64_CC" -O2 -Wall -static -o "$B/bench/refbench-memslot" tools/refbench/memslot.c
	extra+=("kvmspec/bench/memslot.test=$B/bench/memslot.test" "kvmspec/bench/refbench-memslot=$B/bench/refbench-memslot")
fi
# Each test binary runs in kvmspec/tests/<package name>, with its
# package's testdata there, as go test runs it in the package directory.
[ ${#pkgs[@]} = 0 ] || while read -r name dir; do
	if [ -d "$dir/testdata" ]; then extra+=("kvmspec/tests/$name/testdata=$dir/testdata"); fi
done < <($GO list -f '{{.Name}} {{.Dir}}' "${pkgs[@]}")
rm -rf "$OUT" && mkdir -p "$OUT"
"$B/arm64" initramfs -o "$B/initramfs.cpio" -busybox "$CACHE/busybox" -listing "$OUT/initramfs.txt" "${extra[@]}" >/dev/null
say "built the arm64 binaries and the initramfs in $(since "$t0") s ($(grep -c . "$OUT/initramfs.txt") entries, $(du -m "$B/initramfs.cpio" | cut -f1) MiB)"

# Boot. The console goes to console.log; its kvmspec-arm64 lines are
# shown as they come, with the host's seconds since QEMU started.
# loglevel=5 puts warnings and their backtraces on the console too (quiet
# alone shows errors only): when the guest kernel hangs, the console is
# all that comes back (a hard lockup once printed one line, no trace).
#
# A hang: the guest sends its /proc/kallsyms at boot (kvmspec.early) and
# logs each spec's start and end (kvmspec run --progress-file /dev/kmsg).
# When the console reports a lockup or an RCU stall, and again shortly
# before the timeout, `arm64 hang` reads every vCPU through QEMU's
# monitor into $OUT/hang.txt: PC, LR, exception level, the kernel's call
# chain named with those symbols, and the spec the run was in; then each
# vCPU's exception registers (ESR/FAR/ELR at EL2 and EL1) through QEMU's
# gdbstub.
t0=$(date +%s.%N)
res=$B/results.tar.gz
mon=$B/qemu.mon
vabits=$(sed -n 's/^CONFIG_ARM64_VA_BITS=//p' "$CACHE/kernel.config" 2>/dev/null)
hang=(-mon "$mon" -gdb "$B/qemu.gdb" -kallsyms "$B/kallsyms.gz" -console "$OUT/console.log" -va-bits "${vabits:-48}")
rm -f "$res"
say "booting $(cat "$CACHE/kernel.txt") under $(qemu-system-aarch64 --version | head -1) (-smp $SMP, -m $MEM, timeout ${TIMEOUT}s)"
look=$((TIMEOUT > 60 ? TIMEOUT - 30 : TIMEOUT / 2)) # when the watchdog looks
"$B/arm64" hang -wait "${look}s" -why "still running after $look s" "${hang[@]}" >>"$OUT/hang.txt" 2>&1 &
watchdog=$!
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-aarch64 -nic none -M virt,virtualization=on,gic-version=3 -cpu max \
	-smp "$SMP" -m "$MEM" -display none -monitor "unix:$mon,server=on,wait=off" -gdb "unix:$B/qemu.gdb,server=on,wait=off" -serial stdio -no-reboot \
	-kernel "$CACHE/vmlinuz" -initrd "$B/initramfs.cpio" -append 'console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=5 printk.devkmsg=on' \
	-device virtio-serial-pci -chardev "file,id=kvmspecout,path=$res" \
	-device virtserialport,chardev=kvmspecout,name=kvmspec.out \
	-chardev "file,id=kvmspecearly,path=$B/kallsyms.gz" -device virtserialport,chardev=kvmspecearly,name=kvmspec.early </dev/null 2>&1 |
	{
		looked=0
		while IFS= read -r l; do
			printf '%s\n' "$l" >>"$OUT/console.log"
			case $l in
			*kvmspec-arm64:*) echo "  [$(since "$t0") s] ${l#*kvmspec-arm64: }" ;;
			*"hard LOCKUP"* | *"soft lockup"* | *"rcu: INFO"* | *"self-detected stall"* | *"detected stalls"*)
				if [ "$looked" = 0 ]; then
					looked=1
					echo "  [$(since "$t0") s] the guest kernel reports: ${l#*] }; reading its vCPUs into $OUT/hang.txt"
					"$B/arm64" hang -why "${l#*] }" "${hang[@]}" >>"$OUT/hang.txt" 2>&1 &
				fi
				;;
			esac
		done
		wait
	}
rc=${PIPESTATUS[0]}
set -e
kill "$watchdog" 2>/dev/null || true # it may have reported and ended
wait "$watchdog" 2>/dev/null || true
t_boot=$(since "$t0")
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	say "qemu-system-aarch64 timed out after ${TIMEOUT}s (ARM64_TIMEOUT); console: $OUT/console.log"
elif [ "$rc" != 0 ]; then
	say "qemu-system-aarch64 exited $rc; console: $OUT/console.log"
fi
hung=
if [ -s "$OUT/hang.txt" ]; then
	hung=$(sed -n 's/^running spec: //p' "$OUT/hang.txt" | head -1)
	cp "$B/kallsyms.gz" "$OUT/" 2>/dev/null || true # to name other addresses later
	say "the guest kernel hung${hung:+ in $hung}; what its vCPUs ran: $OUT/hang.txt"
else
	rm -f "$OUT/hang.txt"
fi
[ -s "$res" ] || die "the guest sent no results${hung:+; it hung in $hung} (console: $OUT/console.log${hung:+, vCPUs: $OUT/hang.txt})"

rc=0
"$B/arm64" collect -in "$res" -out "$OUT" -platform arm64 || rc=$?
if [ "$MEMSLOT_BENCH" = 1 ] && [ -s "$OUT/memslot-go.txt" ] && [ -s "$OUT/memslot-c.txt" ]; then
	tools/refbench/compare-memslot.sh "$OUT/memslot-go.txt" "$OUT/memslot-c.txt" | tee "$OUT/memslot-compare.txt"
fi
say "QEMU ran ${t_boot} s; the whole arm64 stage took $(since "$t_stage") s; reports in $OUT"
[ "$rc" = 0 ] || die "the arm64 stage failed (reports: $OUT)"
