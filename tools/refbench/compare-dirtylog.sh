#!/usr/bin/env bash
# compare-dirtylog.sh GO_BENCH C_BENCH: prints the harvest cost per page of
# the Go benchmark (BenchmarkHarvest/<mode>) beside the C reference's
# (BenchmarkHarvestC/<mode>), mode by mode.
set -euo pipefail
awk '/^BenchmarkHarvest/ {
	n = $1; sub(/-[0-9]+$/, "", n)
	c = sub(/^BenchmarkHarvestC\//, "", n); sub(/^BenchmarkHarvest\//, "", n)
	for (i = 2; i <= NF; i++) if ($i == "ns/page") v[n, c] = $(i-1)
}
END {
	printf "%-24s %10s %10s %6s\n", "harvest, ns/page", "go", "c", "go/c"
	split("dirty-log clear-log dirty-ring", m, " ")
	for (i = 1; i <= 3; i++) if ((m[i], 0) in v && (m[i], 1) in v)
		printf "%-24s %10.2f %10.2f %6.2f\n", m[i], v[m[i], 0], v[m[i], 1], v[m[i], 0] / v[m[i], 1]
}' "$1" "$2"
