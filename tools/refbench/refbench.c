// refbench: the minimal C program doing the same KVM ioctls as kvmspec's
// Go benchmarks, so `make bench` can state the Go harness's overhead.
//
//   refbench pio N      N port-I/O exit round trips of a CPL0 guest
//                       looping on `out 0x10, al`; prints ns per exit
//   refbench create N   N times: VM + 1 vCPU (mmap of kvm_run, SET_CPUID2)
//                       created and destroyed; prints ns per cycle
//
// The guest setup mirrors harness/kvm's test guest: 4 MiB at GPA 0,
// identity-mapped with 2 MiB pages, flat 64-bit segments.
#include "refbench.h"

struct vcpu {
	int vm, fd;
	struct kvm_run *run;
	size_t run_size;
};

static void create_vm_vcpu(int kvm, struct kvm_cpuid2 *cpuid, struct vcpu *v) {
	v->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		die("KVM_CREATE_VM");
	v->fd = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->fd < 0)
		die("KVM_CREATE_VCPU");
	v->run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run");
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");
}

static void destroy(struct vcpu *v) {
	munmap(v->run, v->run_size);
	close(v->fd);
	close(v->vm);
}

static void bench_pio(int kvm, struct kvm_cpuid2 *cpuid, long n) {
	struct vcpu v;
	create_vm_vcpu(kvm, cpuid, &v);
	size_t size = RAW_MEM;
	const uint8_t code[] = {0xe6, 0x10, 0xeb, 0xfc}; // loop: out 0x10, al; jmp loop
	uint8_t *mem = raw_guest_memory(code, sizeof(code));
	struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uint64_t)mem};
	if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	raw_guest_cpu(v.fd);
	// Warm up, then time.
	for (int i = 0; i < 100; i++)
		if (ioctl(v.fd, KVM_RUN, 0) < 0 && errno != EINTR)
			die("KVM_RUN");
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (ioctl(v.fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			die("KVM_RUN");
		}
		if (v.run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "unexpected exit %u\n", v.run->exit_reason);
			exit(1);
		}
	}
	uint64_t dt = now_ns() - t0;
	printf("pio_exit_ns %.1f\n", (double)dt / n);
	destroy(&v);
	munmap(mem, size);
}

static void bench_create(int kvm, struct kvm_cpuid2 *cpuid, long n) {
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct vcpu v;
		create_vm_vcpu(kvm, cpuid, &v);
		destroy(&v);
	}
	uint64_t dt = now_ns() - t0;
	printf("vm_vcpu_create_destroy_ns %.0f\n", (double)dt / n);
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: refbench pio|create N\n");
		return 2;
	}
	long n = atol(argv[2]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	struct kvm_cpuid2 *cpuid = supported_cpuid(kvm);
	if (!strcmp(argv[1], "pio"))
		bench_pio(kvm, cpuid, n);
	else if (!strcmp(argv[1], "create"))
		bench_create(kvm, cpuid, n);
	else {
		fprintf(stderr, "unknown benchmark %s\n", argv[1]);
		return 2;
	}
	return 0;
}
