// refbench-dirtylog: the minimal C program doing the same dirty-log
// harvest ioctls as suites/dirtylog's Go benchmark (BenchmarkHarvest), on
// the same memory size, so `make bench` can state the Go harness's
// overhead per page.
//
//   refbench-dirtylog MODE MIB PASSES [RING_BYTES]
//
//   MODE  dirty-log   KVM_GET_DIRTY_LOG of the whole slot (get clears)
//         clear-log   manual protect + INITIALLY_SET: KVM_GET_DIRTY_LOG,
//                     then KVM_CLEAR_DIRTY_LOG of the whole slot
//         dirty-ring  walk the vCPU's ring (acquire/release on the flags,
//                     each entry's page set in a bitmap, as the Go
//                     callback does), then KVM_RESET_DIRTY_RINGS; at every
//                     ring-full exit and after the pass
//         all         the three in turn
//   MIB   size of the logged slot; PASSES timed passes; RING_BYTES the
//         ring size (default 65536)
//
// A pass is a guest at CPL3 (native on kvm-pvm hosts, where CPL0 is
// emulated) storing into every 4 KiB page of the slot once, then an MMIO
// write that exits; only the harvest after it is timed. Output lines have
// the shape of Go benchmark lines, one per mode: the mean harvest per pass,
// the median pass's harvest per page, and the mean per page:
//
//   BenchmarkHarvestC/dirty-log  PASSES  NS ns/op  NS ns/page  NS mean-ns/page
#include "refbench.h"

#if KVM_DIRTY_LOG_PAGE_OFFSET == 0
#undef KVM_DIRTY_LOG_PAGE_OFFSET
#define KVM_DIRTY_LOG_PAGE_OFFSET 64 // x86's value; older headers lack it
#endif

#define PAGE 4096ull
#define LOW_SIZE (8ull << 20) // slot 0: tables, code, stack
#define TEST_GPA (1ull << 30) // slot 1: the logged memory
#define MMIO_GPA (16ull << 20) // mapped, but no slot: writes exit
#define CODE_GPA 0x10000ull
#define STACK_TOP 0x200000ull
#define PT_POOL 0x400000ull // 4 KiB page tables of the test memory

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	uint8_t *low, *mem;
	uint64_t pages;
	struct kvm_dirty_gfn *ring;
	uint32_t ring_n, ring_next;
	uint64_t *seen; // pages taken from the ring, as the Go callback keeps them
};

static void enable_cap(int fd, uint32_t cap, uint64_t arg) {
	struct kvm_enable_cap c = {.cap = cap, .args = {arg}};
	if (ioctl(fd, KVM_ENABLE_CAP, &c) < 0)
		die("KVM_ENABLE_CAP");
}

static void set_seg(struct kvm_segment *s, uint16_t sel, int code) {
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->dpl = 3;
	if (code) {
		s->type = 11;
		s->l = 1;
	} else {
		s->type = 3;
		s->db = 1;
	}
}

// build lays out the guest: identity page tables (2 MiB pages below 8 MiB
// and for the MMIO page, 4 KiB pages for the test memory, all user
// accessible), a GDT with ring-3 segments and a TSS, and the pass loop.
static void build(struct vm *v) {
	uint64_t *pml4 = (uint64_t *)(v->low + 0x1000), *pdpt = (uint64_t *)(v->low + 0x2000);
	uint64_t *pd0 = (uint64_t *)(v->low + 0x3000), *pd1 = (uint64_t *)(v->low + 0x4000);
	pml4[0] = 0x2000 | 7;
	pdpt[0] = 0x3000 | 7;
	pdpt[1] = 0x4000 | 7;
	for (uint64_t i = 0; i < LOW_SIZE >> 21; i++)
		pd0[i] = (i << 21) | 0x87;
	pd0[MMIO_GPA >> 21] = MMIO_GPA | 0x87;
	uint64_t npt = (v->pages + 511) / 512;
	if (PT_POOL + npt * PAGE > LOW_SIZE) {
		fprintf(stderr, "test memory too large for the page-table pool\n");
		exit(2);
	}
	for (uint64_t t = 0; t < npt; t++) {
		uint64_t *pt = (uint64_t *)(v->low + PT_POOL + t * PAGE);
		pd1[t] = (PT_POOL + t * PAGE) | 7;
		for (uint64_t e = 0; e < 512 && t * 512 + e < v->pages; e++)
			pt[e] = (TEST_GPA + (t * 512 + e) * PAGE) | 7;
	}
	uint64_t *gdt = (uint64_t *)(v->low + 0x5000);
	gdt[1] = 0x00af9b000000ffffull; // kernel code (unused)
	gdt[2] = 0x00cf93000000ffffull; // kernel data (unused)
	gdt[3] = 0x00affb000000ffffull; // user code
	gdt[4] = 0x00cff3000000ffffull; // user data
	uint64_t tss = 0x6000, lim = 0x67;
	gdt[5] = (lim & 0xffff) | (tss & 0xffffff) << 16 | 0x89ull << 40 | (tss >> 24 & 0xff) << 56;
	gdt[6] = tss >> 32;
	// loop:  mov rdx, rbx
	// inner: mov [rdx], rax; add rdx, 4096; cmp rdx, rcx; jb inner
	//        mov [r8], al (MMIO exit); inc rax; jmp loop
	static const uint8_t code[] = {
		0x48, 0x89, 0xda,
		0x48, 0x89, 0x02,
		0x48, 0x81, 0xc2, 0x00, 0x10, 0x00, 0x00,
		0x48, 0x39, 0xca,
		0x72, 0xf1,
		0x41, 0x88, 0x00,
		0x48, 0xff, 0xc0,
		0xeb, 0xe6,
	};
	memcpy(v->low + CODE_GPA, code, sizeof(code));

	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	set_seg(&s.cs, 0x1b, 1);
	set_seg(&s.ds, 0x23, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.selector = 0x28;
	s.tr.base = tss;
	s.tr.limit = lim;
	s.tr.type = 11;
	s.tr.present = 1;
	s.gdt.base = 0x5000;
	s.gdt.limit = 7 * 8 - 1;
	s.cr3 = 0x1000;
	s.cr4 = 1 << 5; // PAE
	s.cr0 = 0x80050033;
	s.efer = 0x500; // LME | LMA
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs r = {.rip = CODE_GPA, .rsp = STACK_TOP, .rflags = 2, .rax = 1,
			     .rbx = TEST_GPA, .rcx = TEST_GPA + v->pages * PAGE, .r8 = MMIO_GPA};
	if (ioctl(v->vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
}

static void create(struct vm *v, int kvm, const char *mode, uint64_t pages, uint32_t ring_bytes) {
	memset(v, 0, sizeof(*v));
	v->kvm = kvm;
	v->pages = pages;
	v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->fd < 0)
		die("KVM_CREATE_VM");
	if (!strcmp(mode, "clear-log"))
		enable_cap(v->fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			   KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET);
	if (!strcmp(mode, "dirty-ring")) {
		int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
		if (ioctl(kvm, KVM_CHECK_EXTENSION, cap) <= 0)
			cap = KVM_CAP_DIRTY_LOG_RING;
		enable_cap(v->fd, cap, ring_bytes);
	}
	v->low = mmap(NULL, LOW_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	v->mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (v->low == MAP_FAILED || v->mem == MAP_FAILED)
		die("mmap guest memory");
	struct kvm_userspace_memory_region r0 = {.slot = 0, .memory_size = LOW_SIZE, .userspace_addr = (uint64_t)v->low};
	struct kvm_userspace_memory_region r1 = {.slot = 1, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = TEST_GPA,
						 .memory_size = pages * PAGE, .userspace_addr = (uint64_t)v->mem};
	if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r0) < 0 || ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r1) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run");
	struct kvm_cpuid2 *cpuid = supported_cpuid(kvm);
	if (ioctl(v->vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");
	free(cpuid);
	if (!strcmp(mode, "dirty-ring")) {
		v->ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, KVM_DIRTY_LOG_PAGE_OFFSET * PAGE);
		if (v->ring == MAP_FAILED)
			die("mmap dirty ring");
		v->ring_n = ring_bytes / sizeof(struct kvm_dirty_gfn);
	}
	v->seen = calloc((pages + 63) / 64, 8);
	build(v);
}

// harvest_ring walks the ring as KVM's ACQ_REL ABI asks, then resets it.
static uint64_t harvest_ring(struct vm *v) {
	uint64_t n = 0;
	for (;;) {
		struct kvm_dirty_gfn *e = &v->ring[v->ring_next % v->ring_n];
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		if (e->slot == 1 && e->offset < v->pages)
			v->seen[e->offset / 64] |= 1ull << (e->offset % 64);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		v->ring_next++;
		n++;
	}
	int r = ioctl(v->fd, KVM_RESET_DIRTY_RINGS, 0);
	if (r < 0)
		die("KVM_RESET_DIRTY_RINGS");
	if ((uint64_t)r != n) {
		fprintf(stderr, "KVM_RESET_DIRTY_RINGS reset %d entries, %lu harvested\n", r, (unsigned long)n);
		exit(1);
	}
	return n;
}

// pass runs the guest until its MMIO write; ring-full exits on the way
// are harvested, timed into *ring_ns.
static void pass(struct vm *v, uint64_t *ring_ns, uint64_t *entries) {
	for (;;) {
		if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_MMIO:
			return;
		case KVM_EXIT_DIRTY_RING_FULL: {
			uint64_t t0 = now_ns();
			*entries += harvest_ring(v);
			*ring_ns += now_ns() - t0;
			break;
		}
		default:
			fprintf(stderr, "unexpected exit %u\n", v->run->exit_reason);
			exit(1);
		}
	}
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void bench(int kvm, const char *mode, uint64_t mib, long passes, uint32_t ring_bytes) {
	struct vm v;
	uint64_t pages = (mib << 20) / PAGE;
	create(&v, kvm, mode, pages, ring_bytes);
	uint64_t words = (pages + 63) / 64;
	uint64_t *bm = calloc(words, 8);
	struct kvm_dirty_log get = {.slot = 1, .dirty_bitmap = bm};
	struct kvm_clear_dirty_log clr = {.slot = 1, .first_page = 0, .num_pages = pages, .dirty_bitmap = bm};
	int manual = !strcmp(mode, "clear-log"), ring = v.ring != NULL;
	uint64_t total = 0, harvested = 0;
	double *per_page = calloc(passes, sizeof(double));
	// Pass 0 populates and arms logging for every page; not timed.
	for (long i = -1; i < passes; i++) {
		uint64_t ring_ns = 0, entries = 0;
		pass(&v, &ring_ns, &entries);
		uint64_t t0 = now_ns();
		if (ring) {
			entries += harvest_ring(&v);
		} else {
			if (ioctl(v.fd, KVM_GET_DIRTY_LOG, &get) < 0)
				die("KVM_GET_DIRTY_LOG");
			if (manual && ioctl(v.fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
				die("KVM_CLEAR_DIRTY_LOG");
		}
		uint64_t dt = now_ns() - t0 + ring_ns;
		if (i >= 0) {
			uint64_t n = ring ? entries : pages;
			total += dt;
			harvested += n;
			per_page[i] = (double)dt / n;
		}
	}
	qsort(per_page, passes, sizeof(double), cmp_double);
	printf("BenchmarkHarvestC/%s\t%ld\t%.0f ns/op\t%.2f ns/page\t%.2f mean-ns/page\n", mode, passes,
	       (double)total / passes, per_page[passes / 2], (double)total / harvested);
	free(per_page);
	fflush(stdout);
}

int main(int argc, char **argv) {
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: refbench-dirtylog dirty-log|clear-log|dirty-ring|all MIB PASSES [RING_BYTES]\n");
		return 2;
	}
	uint64_t mib = strtoull(argv[2], NULL, 0);
	long passes = atol(argv[3]);
	uint32_t ring_bytes = argc == 5 ? strtoul(argv[4], NULL, 0) : 65536;
	if (mib == 0 || passes <= 0) {
		fprintf(stderr, "MIB and PASSES must be positive\n");
		return 2;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	const char *modes[] = {"dirty-log", "clear-log", "dirty-ring"};
	for (int i = 0; i < 3; i++)
		if (!strcmp(argv[1], "all") || !strcmp(argv[1], modes[i]))
			bench(kvm, modes[i], mib, passes, ring_bytes);
	return 0;
}
