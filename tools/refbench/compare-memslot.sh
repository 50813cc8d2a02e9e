#!/usr/bin/env bash
# compare-memslot.sh GO_BENCH C_BENCH: prints the median cost of each
# memslot update (create, move, delete) with N slots present, Go harness
# on KVM (BenchmarkUpdate/kvm/slots=N) beside the C reference
# (BenchmarkUpdateC/slots=N), and the Go/C ratio.
set -euo pipefail
awk '
/^BenchmarkUpdate(C)?\/(kvm\/)?slots=/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	lang = (name ~ /^BenchmarkUpdateC\//) ? "c" : "go"
	n = name; sub(/.*slots=/, "", n)
	for (i = 2; i <= NF; i++)
		if ($i ~ /^(create|move|delete)-ns$/) { op = $i; sub(/-ns$/, "", op); v[n, op, lang] = $(i-1); ns[n] = 1 }
}
END {
	printf "%-8s %-7s %12s %12s %6s\n", "slots", "op", "go ns", "c ns", "go/c"
	k = 0
	for (n in ns) keys[++k] = n + 0
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	split("create move delete", ops, " ")
	for (i = 1; i <= k; i++) for (o = 1; o <= 3; o++) {
		n = keys[i]; op = ops[o]
		if ((n, op, "go") in v && (n, op, "c") in v && v[n, op, "c"] > 0)
			printf "%-8d %-7s %12.0f %12.0f %6.2f\n", n, op, v[n, op, "go"], v[n, op, "c"], v[n, op, "go"] / v[n, op, "c"]
	}
}' "$1" "$2"
