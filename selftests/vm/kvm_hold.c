// SPDX-License-Identifier: GPL-2.0
/*
 * A KVM VM for the QEMU bench's coexistence stage (selftests/vm/init):
 *
 *   kvm_hold spin   a real-mode guest spinning on "jmp ." inside KVM_RUN
 *                   until SIGTERM: a live KVM VM, while kmmu's hardware
 *                   vCPUs run beside it
 *   kvm_hold hlt    a guest that runs "hlt": exit 0 when KVM_RUN comes back
 *                   with KVM_EXIT_HLT, i.e. kvm_amd still runs its guests
 *
 * Exit status 0, or 1 with the failing call on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_SIZE	0x10000UL
#define CODE		0x1000

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int fail(const char *what)
{
	fprintf(stderr, "kvm_hold: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	static const unsigned char spin[] = { 0xeb, 0xfe };	/* jmp . */
	static const unsigned char hlt[] = { 0xf4 };		/* hlt */
	struct kvm_userspace_memory_region region = { 0 };
	struct sigaction sa = { .sa_handler = on_term };
	bool want_hlt = argc > 1 && !strcmp(argv[1], "hlt");
	int kvm, vm, vcpu, size;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	unsigned char *mem;

	if (argc != 2 || (strcmp(argv[1], "spin") && strcmp(argv[1], "hlt"))) {
		fprintf(stderr, "usage: kvm_hold spin|hlt\n");
		return 2;
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	memcpy(mem + CODE, want_hlt ? hlt : spin, want_hlt ? sizeof(hlt) : sizeof(spin));
	region.memory_size = GUEST_SIZE;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region))
		return fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap of the vCPU");

	/* Real mode, CS base 0: the code at CODE. */
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs))
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs))
		return fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE;
	regs.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs))
		return fail("KVM_SET_REGS");

	sigaction(SIGTERM, &sa, NULL);
	while (!stop) {
		if (ioctl(vcpu, KVM_RUN, 0)) {
			if (errno == EINTR)
				continue;
			return fail("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_HLT && want_hlt)
			return 0;
		if (run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "kvm_hold: exit reason %u\n", run->exit_reason);
			return 1;
		}
	}
	return 0;
}
