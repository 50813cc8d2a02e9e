// refbench.h: what every C reference program needs, kept in one place.
#ifndef REFBENCH_H
#define REFBENCH_H
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static inline void die(const char *what) {
	perror(what);
	exit(1);
}

static inline uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

// The rest is x86's: the references that run a guest (refbench.c, uffd.c,
// dirtylog.c) build only there; memslot.c and madvise.c need none of it
// and also build for arm64 (memslot.c: make bench-arm64).
#if defined(__x86_64__)
// supported_cpuid reads KVM_GET_SUPPORTED_CPUID, which the Go backend
// installs on every vCPU.
static inline struct kvm_cpuid2 *supported_cpuid(int kvm) {
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
	c->nent = n;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	return c;
}

// The raw guest every reference shares with harness/kvm's test guest:
// RAW_MEM bytes at GPA 0 identity-mapped with 2 MiB pages (tables at
// 0x1000), code at RAW_CODE, flat 64-bit CPL0 segments.
#define RAW_MEM (4ull << 20)
#define RAW_CODE 0x100000ull

// raw_guest_memory maps the raw guest's slot 0 and copies code into it.
static inline uint8_t *raw_guest_memory(const uint8_t *code, size_t len) {
	uint8_t *mem = mmap(NULL, RAW_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest");
	uint64_t *pml4 = (uint64_t *)(mem + 0x1000), *pdpt = (uint64_t *)(mem + 0x2000), *pd = (uint64_t *)(mem + 0x3000);
	pml4[0] = 0x2000 | 7;
	pdpt[0] = 0x3000 | 7;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x87;
	memcpy(mem + RAW_CODE, code, len);
	return mem;
}

// raw_guest_cpu puts a vCPU in 64-bit mode at RAW_CODE.
static inline void raw_guest_cpu(int vcpu) {
	struct kvm_sregs s;
	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	struct kvm_segment cs = {.selector = 8, .limit = 0xffffffff, .type = 11, .present = 1, .s = 1, .l = 1, .g = 1};
	struct kvm_segment ds = {.selector = 16, .limit = 0xffffffff, .type = 3, .present = 1, .s = 1, .db = 1, .g = 1};
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr3 = 0x1000;
	s.cr4 = 1 << 5;
	s.cr0 = 0x80050033;
	s.efer = 0x500;
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = RAW_CODE, .rsp = 0x200000, .rflags = 2};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");
}
#endif // __x86_64__
#endif
