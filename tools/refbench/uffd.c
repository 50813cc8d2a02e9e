// uffd: the minimal C userfaultfd demand-paging loop, so `make bench` can
// state the overhead of harness/kvm's Go missing-page handlers
// (uffd_bench_test.go does the same in Go).
//
//   uffd host N    a thread reads one byte of each of N pages of a
//                  registered anonymous region; prints ns per first touch
//   uffd guest N   a CPL0 KVM guest reads one quadword of each of N pages
//                  of a registered slot in one KVM_RUN; prints ns per touch
//
// Both register the region with UFFDIO_REGISTER_MODE_MISSING; a handler
// thread polls the userfaultfd and an eventfd (its stop signal), reads
// uffd_msg batches and answers each fault with UFFDIO_COPY of a page of
// 0xAB. The guest has the same shape as harness/kvm's test guest: 4 MiB
// slot 0 at GPA 0, the first GiB identity-mapped with 2 MiB pages, code at
// 0x100000, the registered slot at GPA 0x20000000.
#define _GNU_SOURCE
#include "refbench.h"
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#define PAGE 4096ul
#define DATA_GPA 0x20000000ull

// open_uffd opens a userfaultfd that also handles kernel-mode faults
// (KVM's), through the syscall or /dev/userfaultfd.
static int open_uffd(void) {
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			die("userfaultfd and /dev/userfaultfd");
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			die("USERFAULTFD_IOC_NEW");
		close(dev);
	}
	struct uffdio_api api = {.api = UFFD_API};
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	return fd;
}

struct server {
	int uffd, stop;
	uint8_t *src;
	long faults;
	pthread_t thread;
};

static void *serve(void *arg) {
	struct server *s = arg;
	struct pollfd fds[2] = {{.fd = s->uffd, .events = POLLIN}, {.fd = s->stop, .events = POLLIN}};
	struct uffd_msg msgs[16];
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (fds[1].revents)
			return NULL;
		for (;;) {
			ssize_t n = read(s->uffd, msgs, sizeof(msgs));
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				die("read uffd");
			}
			for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
				if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
					continue;
				struct uffdio_copy c = {.dst = msgs[i].arg.pagefault.address & ~(PAGE - 1), .src = (uint64_t)s->src, .len = PAGE};
				while (ioctl(s->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
					if (errno != EAGAIN)
						die("UFFDIO_COPY");
				s->faults++;
			}
			if (n < (ssize_t)sizeof(msgs))
				break;
		}
	}
}

static void start(struct server *s, void *region, size_t size) {
	s->uffd = open_uffd();
	struct uffdio_register r = {.range = {.start = (uint64_t)region, .len = size}, .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(s->uffd, UFFDIO_REGISTER, &r) < 0)
		die("UFFDIO_REGISTER");
	if (!(r.ioctls & (1ull << _UFFDIO_COPY))) {
		fprintf(stderr, "no UFFDIO_COPY on the range\n");
		exit(1);
	}
	s->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop < 0)
		die("eventfd");
	s->src = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s->src == MAP_FAILED)
		die("mmap source page");
	memset(s->src, 0xab, PAGE);
	s->faults = 0;
	if (pthread_create(&s->thread, NULL, serve, s))
		die("pthread_create");
}

static void stop(struct server *s, long want) {
	uint64_t one = 1;
	if (write(s->stop, &one, sizeof(one)) != sizeof(one))
		die("write eventfd");
	pthread_join(s->thread, NULL);
	if (s->faults != want) {
		fprintf(stderr, "%ld faults, want %ld\n", s->faults, want);
		exit(1);
	}
	close(s->uffd);
	close(s->stop);
	munmap(s->src, PAGE);
}

static void bench_host(long n) {
	size_t size = n * PAGE;
	volatile uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap region");
	struct server s;
	start(&s, (void *)p, size);
	uint64_t t0 = now_ns();
	unsigned sum = 0;
	for (long i = 0; i < n; i++)
		sum += p[i * PAGE];
	uint64_t dt = now_ns() - t0;
	stop(&s, n);
	if (sum != (unsigned)(0xab * n))
		fprintf(stderr, "contents: sum %u\n", sum);
	printf("uffd_host_touch_ns %.0f\n", (double)dt / n);
	munmap((void *)p, size);
}

static void bench_guest(long n) {
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = nent;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	size_t run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");

	size_t size0 = RAW_MEM;
	// mov rbx, 0x20000000; mov rcx, n; loop: mov rax, [rbx];
	// add rbx, 4096; dec rcx; jnz loop; out 0x10, al; jmp $
	uint8_t code[] = {0x48, 0xc7, 0xc3, 0x00, 0x00, 0x00, 0x20, 0x48, 0xc7, 0xc1, 0, 0, 0, 0,
			  0x48, 0x8b, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00, 0x48, 0xff, 0xc9, 0x75, 0xf1,
			  0xe6, 0x10, 0xeb, 0xfe};
	memcpy(code + 10, &(uint32_t){(uint32_t)n}, 4);
	uint8_t *mem = raw_guest_memory(code, sizeof(code));
	struct kvm_userspace_memory_region r0 = {.slot = 0, .memory_size = size0, .userspace_addr = (uint64_t)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r0) < 0)
		die("KVM_SET_USER_MEMORY_REGION 0");
	size_t size = n * PAGE;
	uint8_t *data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (data == MAP_FAILED)
		die("mmap data");
	struct kvm_userspace_memory_region r1 = {.slot = 1, .guest_phys_addr = DATA_GPA, .memory_size = size, .userspace_addr = (uint64_t)data};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r1) < 0)
		die("KVM_SET_USER_MEMORY_REGION 1");

	raw_guest_cpu(vcpu);

	struct server srv;
	start(&srv, data, size);
	uint64_t t0 = now_ns();
	while (ioctl(vcpu, KVM_RUN, 0) < 0)
		if (errno != EINTR)
			die("KVM_RUN");
	uint64_t dt = now_ns() - t0;
	if (run->exit_reason != KVM_EXIT_IO) {
		fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
		exit(1);
	}
	stop(&srv, n);
	printf("uffd_guest_touch_ns %.0f\n", (double)dt / n);
	munmap(run, run_size);
	close(vcpu);
	close(vm);
	close(kvm);
	munmap(data, size);
	munmap(mem, size0);
	free(cpuid);
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: uffd host|guest N\n");
		return 2;
	}
	long n = atol(argv[2]);
	if (n <= 0 || n > (1l << 20)) {
		fprintf(stderr, "N must be in [1, 1048576]\n");
		return 2;
	}
	if (!strcmp(argv[1], "host"))
		bench_host(n);
	else if (!strcmp(argv[1], "guest"))
		bench_guest(n);
	else {
		fprintf(stderr, "usage: uffd host|guest N\n");
		return 2;
	}
	return 0;
}
