#!/usr/bin/env bash
# compare-memslot.sh GO_BENCH C_BENCH: prints the median cost of each
# memslot update (create, move, delete) with N slots present, Go harness
# on KVM (BenchmarkUpdate/kvm/slots=N) beside the C reference
# (BenchmarkUpdateC/slots=N), and the Go/C ratio. A slot count with
# several lines (make bench-arm64's ARM64_MEMSLOT_REPEAT: C, Go, C, Go, ...)
# gets the median of their medians, column "runs" how many there were of
# each; with as many of each, go/c is the median of the ratios of the
# pairs (the i-th Go line over the i-th C line, run back to back), which
# the host's load drifting between pairs moves less than the ratio of the
# medians. Column "best" is the ratio of each side's fastest run, the
# least disturbed one: under QEMU TCG on a busy host one side's median
# moves by half between runs of the same boot, and the fastest runs are
# what the load left alone.
set -euo pipefail
awk '
/^BenchmarkUpdate(C)?\/(kvm\/)?slots=/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	lang = (name ~ /^BenchmarkUpdateC\//) ? "c" : "go"
	n = name; sub(/.*slots=/, "", n)
	for (i = 2; i <= NF; i++)
		if ($i ~ /^(create|move|delete)-ns$/) {
			op = $i; sub(/-ns$/, "", op)
			k = ++cnt[n, op, lang]; v[n, op, lang, k] = $(i-1) + 0; ns[n] = 1
		}
}
function mid(a, k,    i, j, t) {
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((k + 1) / 2)]
}
function med(n, op, lang,    k, i, a) {
	k = cnt[n, op, lang]
	for (i = 1; i <= k; i++) a[i] = v[n, op, lang, i]
	return mid(a, k)
}
function best(n, op, lang,    k, i, m) {
	k = cnt[n, op, lang]; m = v[n, op, lang, 1]
	for (i = 2; i <= k; i++) if (v[n, op, lang, i] < m) m = v[n, op, lang, i]
	return m
}
function ratio(n, op,    k, i, a) {
	k = cnt[n, op, "go"]
	if (k != cnt[n, op, "c"]) return med(n, op, "go") / med(n, op, "c")
	for (i = 1; i <= k; i++) { if (v[n, op, "c", i] <= 0) return -1; a[i] = v[n, op, "go", i] / v[n, op, "c", i] }
	return mid(a, k)
}
END {
	printf "%-8s %-7s %12s %12s %6s %6s %5s\n", "slots", "op", "go ns", "c ns", "go/c", "best", "runs"
	k = 0
	for (n in ns) keys[++k] = n + 0
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	split("create move delete", ops, " ")
	for (i = 1; i <= k; i++) for (o = 1; o <= 3; o++) {
		n = keys[i]; op = ops[o]
		if (cnt[n, op, "go"] > 0 && cnt[n, op, "c"] > 0) {
			g = med(n, op, "go"); c = med(n, op, "c"); r = ratio(n, op)
			bc = best(n, op, "c")
			if (c > 0 && r >= 0 && bc > 0) printf "%-8d %-7s %12.0f %12.0f %6.2f %6.2f %2d/%-2d\n", n, op, g, c, r, best(n, op, "go") / bc, cnt[n, op, "go"], cnt[n, op, "c"]
		}
	}
}' "$1" "$2"
