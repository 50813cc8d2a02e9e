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
#endif
