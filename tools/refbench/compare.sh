#!/usr/bin/env bash
# compare.sh REFBENCH GO_BENCH_OUTPUT: runs the C reference with the same
# iteration counts as the Go benchmarks and prints both side by side.
set -euo pipefail
ref=$1 gobench=$2
go_pio=$(awk '/^BenchmarkPIORoundTrip-/{for(i=1;i<=NF;i++) if($(i+1)=="ns/exit") print $i}' "$gobench")
go_create=$(awk '/^BenchmarkVMCreateDestroy-/{print $3}' "$gobench")
c_pio=$("$ref" pio 20000 | awk '{print $2}')
c_create=$("$ref" create 300 | awk '{print $2}')
printf '%-34s %12s %12s %8s\n' "benchmark" "go" "c" "go/c"
printf '%-34s %12s %12s %8s\n' "pio exit round trip (ns)" "$go_pio" "$c_pio" "$(awk -v a="$go_pio" -v b="$c_pio" 'BEGIN{printf "%.2f", a/b}')"
printf '%-34s %12s %12s %8s\n' "vm+vcpu create/destroy (ns)" "$go_create" "$c_create" "$(awk -v a="$go_create" -v b="$c_create" 'BEGIN{printf "%.2f", a/b}')"
