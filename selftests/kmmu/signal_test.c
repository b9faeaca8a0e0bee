// SPDX-License-Identifier: GPL-2.0
/*
 * RUN and the process around it: a signal interrupts RUN with -EINTR and an
 * INTR exit, and RUN goes on afterwards; a process killed in the middle of
 * RUN, or exiting with its fds open, leaves nothing behind (on dev, the
 * QEMU bench checks the kernel log for warnings after these).
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define GPA	0x80000000ULL
#define SIZE	(256 * SZ_4K)

static void on_sigusr1(int sig)
{
}

struct runner {
	struct kmmu_vcpu *vcpu;
	struct kmmu_run run;
	int ret;
	volatile int started;
};

static void *run_forever(void *arg)
{
	struct runner *r = arg;

	r->started = 1;
	memset(&r->run, 0, sizeof(r->run));
	r->ret = kmmu_vcpu_run(r->vcpu, &r->run);
	return NULL;
}

/* A workload that would take hours: only a signal or a kill ends RUN. */
static struct kmmu_workload endless(void)
{
	struct kmmu_workload wl = kmmu_wl_seq(GPA, SIZE, 50, 5);

	wl.iterations = 1ULL << 40;
	return wl;
}

TEST(signal_interrupts_run)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART */
	struct kmmu_workload wl = endless();
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	struct runner r = {};
	pthread_t t;

	KMMU_REQUIRE_BACKEND();
	if (kmmu_backend() != KMMU_BACKEND_DEV)
		SKIP(return, "signals reach RUN only in the kernel; user RUN stops on KICK");
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SIZE));
	KMMU_VM_CREATE(NULL, &vm);
	ASSERT_EQ(0, kmmu_vm_set_memslot(vm, 0, 0, GPA, SIZE, mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(vm, 0, &r.vcpu));
	ASSERT_EQ(0, kmmu_vcpu_set_workload(r.vcpu, &wl));

	ASSERT_EQ(0, pthread_create(&t, NULL, run_forever, &r));
	while (!r.started)
		usleep(1000);
	usleep(100 * 1000);
	ASSERT_EQ(0, pthread_kill(t, SIGUSR1));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(-EINTR, r.ret);
	EXPECT_EQ(KMMU_EXIT_INTR, r.run.exit_reason);
	EXPECT_LT(0, r.run.accesses);

	/* And it goes on where it stopped. */
	memset(&r.run, 0, sizeof(r.run));
	r.run.max_accesses = 1000;
	EXPECT_EQ(0, kmmu_vcpu_run(r.vcpu, &r.run));
	EXPECT_EQ(KMMU_EXIT_BUDGET, r.run.exit_reason);

	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/*
 * The child sets up a VM with @nvcpus vCPU threads in RUN, says so through
 * @fd, and never returns on its own.
 */
static void child_run_forever(int fd, int nvcpus, bool close_vm_fd)
{
	struct kmmu_workload wl = endless();
	struct runner r[4] = {};
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	pthread_t t[4];
	int i;

	if (kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SIZE) || kmmu_vm_create(NULL, &vm) ||
	    kmmu_vm_set_memslot(vm, 0, 0, GPA, SIZE, mem.addr))
		_exit(1);
	for (i = 0; i < nvcpus; i++) {
		if (kmmu_vcpu_create(vm, i, &r[i].vcpu) || kmmu_vcpu_set_workload(r[i].vcpu, &wl))
			_exit(1);
		pthread_create(&t[i], NULL, run_forever, &r[i]);
	}
	for (i = 0; i < nvcpus; i++)
		while (!r[i].started)
			usleep(1000);
	/* The vCPUs hold the VM: its own fd may go first. */
	if (close_vm_fd)
		kmmu_close(vm->fd);
	if (write(fd, "r", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void kill_mid_run(struct __test_metadata *_metadata, int nvcpus, bool close_vm_fd)
{
	int p[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(p[0]);
		child_run_forever(p[1], nvcpus, close_vm_fd);
	}
	close(p[1]);
	ASSERT_EQ(1, read(p[0], &c, 1));
	close(p[0]);
	usleep(50 * 1000);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
}

TEST(kill_mid_run_one_vcpu)
{
	KMMU_REQUIRE_BACKEND();
	kill_mid_run(_metadata, 1, false);
}

TEST(kill_mid_run_two_vcpus_vm_fd_closed)
{
	KMMU_REQUIRE_BACKEND();
	kill_mid_run(_metadata, 2, true);
}

/* Exiting with every fd still open: the kernel closes them in its own order. */
TEST(exit_with_fds_open)
{
	struct kmmu_workload wl = kmmu_wl_seq(GPA, SIZE, 100, 1);
	int status;
	pid_t pid;

	KMMU_REQUIRE_BACKEND();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct kmmu_vcpu *vcpu;
		struct kmmu_vm *vm;
		struct kmmu_mem mem;
		struct kmmu_run run;

		if (kmmu_mem_alloc(&mem, KMMU_BACKING_ANON, SIZE) || kmmu_vm_create(NULL, &vm) ||
		    kmmu_vm_set_memslot(vm, 0, 0, GPA, SIZE, mem.addr) ||
		    kmmu_vcpu_create(vm, 0, &vcpu) || kmmu_vcpu_run_workload(vcpu, &wl, &run) ||
		    run.exit_reason != KMMU_EXIT_DONE)
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_HARNESS_MAIN
