// refbench-madvise: the minimal C loop doing what the free-page-reporting
// device does to reported memory (harness/pagereport): discard 2 MiB
// ranges of touched guest memory with madvise(MADV_DONTNEED) on anonymous
// memory or fallocate(PUNCH_HOLE) on a memfd, so `make bench` can state
// the Go device's overhead beside BenchmarkDiscard. No KVM needed.
//
//   refbench-madvise BACKING MIB PASSES
//
//   BACKING  anonymous | memfd | all
//   MIB      memory per pass, discarded as MIB/2 ranges of 2 MiB
//   PASSES   timed passes; every page is written before each, untimed
//
// Output has the shape of Go benchmark lines: the mean discard per pass
// and the median pass's rate.
//
//   BenchmarkDiscardC/anonymous  PASSES  NS ns/op  RATE MiB/s
#define _GNU_SOURCE
#include "refbench.h"
#include <linux/falloc.h>
#include <sys/syscall.h>

#define PAGE 4096ull
#define RANGE (2ull << 20)

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void run(const char *backing, uint64_t mib, int passes) {
	uint64_t size = mib << 20;
	int fd = -1;
	uint8_t *mem;
	if (strcmp(backing, "memfd") == 0) {
		fd = syscall(SYS_memfd_create, "refbench-madvise", 0);
		if (fd < 0)
			die("memfd_create");
		if (ftruncate(fd, size) < 0)
			die("ftruncate");
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (mem == MAP_FAILED)
		die("mmap");
	uint64_t *ns = calloc(passes, sizeof(*ns)), total = 0;
	for (int p = 0; p < passes; p++) {
		for (uint64_t off = 0; off < size; off += PAGE)
			mem[off] = 1;
		uint64_t t0 = now_ns();
		for (uint64_t off = 0; off < size; off += RANGE) {
			if (fd >= 0) {
				if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, RANGE) < 0)
					die("fallocate");
			} else if (madvise(mem + off, RANGE, MADV_DONTNEED) < 0) {
				die("madvise");
			}
		}
		ns[p] = now_ns() - t0;
		total += ns[p];
	}
	qsort(ns, passes, sizeof(*ns), cmp_u64);
	printf("BenchmarkDiscardC/%s\t%d\t%llu ns/op\t%.0f MiB/s\n", backing, passes,
	       (unsigned long long)(total / passes), (double)mib / (ns[passes / 2] / 1e9));
	munmap(mem, size);
	if (fd >= 0)
		close(fd);
	free(ns);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: %s anonymous|memfd|all MIB PASSES\n", argv[0]);
		return 2;
	}
	uint64_t mib = strtoull(argv[2], NULL, 0);
	int passes = atoi(argv[3]);
	if (mib == 0 || mib % 2 != 0 || passes <= 0) {
		fprintf(stderr, "MIB must be a positive even number, PASSES positive\n");
		return 2;
	}
	if (strcmp(argv[1], "all") == 0) {
		run("anonymous", mib, passes);
		run("memfd", mib, passes);
	} else {
		run(argv[1], mib, passes);
	}
	return 0;
}
