// refbench-memslot: the minimal C program doing the same memslot ioctls as
// suites/memslot's Go benchmark (BenchmarkUpdate/kvm), so `make bench` can
// state the Go harness's overhead per KVM_SET_USER_MEMORY_REGION.
//
//   refbench-memslot [ROUNDS [N|max...]]
//
// For each slot count N (default: 1 8 64 512 4096 and KVM_CAP_NR_MEMSLOTS
// - 1, the sweep of memslot_perf_test; "max" names that last one) a new VM gets N one-page slots at
// GPA 256 MiB + i pages, all from one MAP_NORESERVE mapping (the setup,
// timed); then ROUNDS times (default 200) one more one-page slot, id N, is
// created at 4 GiB, moved to 4 GiB + 2 MiB and deleted (memory_size 0),
// each ioctl timed. Output lines have the shape of Go benchmark lines, the
// metrics the median of each operation:
//
//   BenchmarkUpdateC/slots=N  ROUNDS  NS ns/op  NS create-ns  NS delete-ns  NS move-ns  MS setup-ms
//
// Without /dev/kvm (or KVMSPEC_KVM_DEVICE) it says so and exits 0.
#include "refbench.h"

#define PAGE 4096ull
#define AREA_GPA (256ull << 20)
#define PROBE_GPA (4ull << 30)
#define PROBE_MOVE_GPA (PROBE_GPA + (2ull << 20))

static void set_region(int vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host) {
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)host};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		fprintf(stderr, "KVM_SET_USER_MEMORY_REGION slot %u gpa %#llx size %#llx: %s\n", slot,
			(unsigned long long)gpa, (unsigned long long)size, strerror(errno));
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, long n) {
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static void bench(int kvm, long n, long rounds) {
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	size_t len = (size_t)(n + 1) * PAGE;
	uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		set_region(vm, i, AREA_GPA + i * PAGE, PAGE, mem + i * PAGE);
	uint64_t setup = now_ns() - t0;
	uint64_t *c = calloc(rounds, 8), *m = calloc(rounds, 8), *d = calloc(rounds, 8);
	if (!c || !m || !d)
		die("calloc");
	void *probe = mem + n * PAGE;
	uint64_t start = now_ns();
	for (long r = 0; r < rounds; r++) {
		uint64_t a = now_ns();
		set_region(vm, n, PROBE_GPA, PAGE, probe);
		uint64_t b = now_ns();
		set_region(vm, n, PROBE_MOVE_GPA, PAGE, probe);
		uint64_t e = now_ns();
		set_region(vm, n, PROBE_MOVE_GPA, 0, probe);
		uint64_t f = now_ns();
		c[r] = b - a, m[r] = e - b, d[r] = f - e;
	}
	uint64_t total = now_ns() - start;
	printf("BenchmarkUpdateC/slots=%ld\t%ld\t%llu ns/op\t%llu create-ns\t%llu delete-ns\t%llu move-ns\t%.3f setup-ms\n", n, rounds,
		(unsigned long long)(total / rounds), (unsigned long long)median(c, rounds), (unsigned long long)median(d, rounds),
		(unsigned long long)median(m, rounds), setup / 1e6);
	fflush(stdout);
	free(c), free(m), free(d);
	close(vm);
	munmap(mem, len);
}

int main(int argc, char **argv) {
	long rounds = argc > 1 ? atol(argv[1]) : 200;
	if (rounds <= 0) {
		fprintf(stderr, "usage: refbench-memslot [ROUNDS [N|max...]]\n");
		return 2;
	}
	const char *dev = getenv("KVMSPEC_KVM_DEVICE");
	if (!dev || !*dev)
		dev = "/dev/kvm";
	int kvm = open(dev, O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("refbench-memslot: %s: %s: no KVM here, the C reference is skipped\n", dev, strerror(errno));
		return 0;
	}
	long max = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (max < 2)
		die("KVM_CHECK_EXTENSION KVM_CAP_NR_MEMSLOTS");
	if (argc > 2) {
		for (int i = 2; i < argc; i++) {
			long n = strcmp(argv[i], "max") == 0 ? max - 1 : atol(argv[i]);
			if (n < 1 || n > max - 1) {
				fprintf(stderr, "slot count %s: want 1..%ld\n", argv[i], max - 1);
				return 2;
			}
			bench(kvm, n, rounds);
		}
		return 0;
	}
	long sweep[] = {1, 8, 64, 512, 4096, max - 1};
	for (int i = 0; i < 6; i++)
		if (sweep[i] <= max - 1 && (i == 5 || sweep[i] < max - 1))
			bench(kvm, sweep[i], rounds);
	return 0;
}
