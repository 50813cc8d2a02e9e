#!/bin/sh
# Runs kvmspec on a LAVA device and reports each testcase of its KTAP
# report with lava-test-case: pass, fail, or skip (known deviations are
# skips whose reason starts "known deviation"). The run itself is the
# test case "kvmspec-run": pass on exit 0, fail on a failing spec, and an
# error on bad usage. Arguments: URL BACKEND LABEL_FILTER SHARD (may be "").
set -u

# lava_cases KTAP: one lava-test-case per leaf test of kvmspec's KTAP
# (backend > area > testcase). LAVA names are at most 100 characters of
# [A-Za-z0-9_.-]: "emu.smoke.pio_out_cpl0", made unique with a suffix.
lava_cases() {
	awk '
	function lavaname(s,   n) {
		gsub(/[^A-Za-z0-9_.-]+/, "_", s)
		sub(/^_+/, "", s); sub(/_+$/, "", s)
		s = substr(s, 1, 100)
		if (s in seen) {
			n = ++seen[s]
			s = substr(s, 1, 94) "_" n
		}
		seen[s] = 1
		return s
	}
	/^    # Subtest: / { backend = substr($0, 16); next }
	/^        # Subtest: / { area = substr($0, 20); next }
	/^        (ok|not ok) [0-9]+ / {
		line = substr($0, 9)
		result = "pass"
		if (line ~ /^not ok /) { result = "fail"; line = substr(line, 8) } else { line = substr(line, 4) }
		sub(/^[0-9]+ /, "", line)
		d = index(line, " # ")
		if (d > 0) {
			if (substr(line, d + 3) ~ /^SKIP/) result = "skip"
			line = substr(line, 1, d - 1)
		}
		print result, lavaname(backend "." area "." line)
	}' "$1" | while read -r result name; do
		lava-test-case "$name" --result "$result"
	done
}
url=${1:-}
backend=${2:-auto}
filter=${3:-}
shard=${4:-}
out=${KVMSPEC_OUT:-$(pwd)/kvmspec-out}
bin=kvmspec
if [ -n "$url" ]; then
	bin=$(pwd)/kvmspec
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$bin" "$url" || { lava-test-case kvmspec-fetch --result fail; exit 0; }
	else
		wget -q -O "$bin" "$url" || { lava-test-case kvmspec-fetch --result fail; exit 0; }
	fi
	chmod +x "$bin"
fi

set -- run --backend "$backend" --report-dir "$out"
[ -n "$filter" ] && set -- "$@" --label-filter "$filter"
[ -n "$shard" ] && set -- "$@" --shard "$shard"
"$bin" "$@"
status=$?

if [ -f "$out/report.ktap" ]; then
	lava_cases "$out/report.ktap"
fi
case $status in
0) lava-test-case kvmspec-run --result pass ;;
1) lava-test-case kvmspec-run --result fail ;;
*) lava-test-case kvmspec-run --result fail --measurement "$status" --units exit ;;
esac
exit 0
