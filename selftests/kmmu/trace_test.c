// SPDX-License-Identifier: GPL-2.0
/*
 * kmmu.ko's tracepoints, as trace-cmd or perf would read them: with
 * events/kmmu enabled, a fault, SPTE changes, a zap, a remote TLB flush
 * and an aging pass each leave their line in the trace, naming what they
 * did.  The user backend has no tracepoints: these SKIP there.
 */
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define GPA	0x100000000ULL
#define PAGES	8
#define TRACEFS	"/sys/kernel/tracing"

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

/* The whole trace buffer, NUL-terminated, or NULL. */
static char *read_trace(void)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap + 1);
	int fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	return buf;
}

FIXTURE(trace) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu;
	struct kmmu_mem mem;
	bool enabled;
};

FIXTURE_SETUP(trace)
{
	struct stat st;

	if (kmmu_backend() != KMMU_BACKEND_DEV)
		SKIP(return, "tracepoints are kmmu.ko's");
	KMMU_REQUIRE_BACKEND();
	if (stat(TRACEFS "/trace", &st))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (stat(TRACEFS "/events/kmmu", &st))
		SKIP(return, "no " TRACEFS "/events/kmmu (tracefs: %s)", strerror(errno));
	ASSERT_EQ(0, write_file(TRACEFS "/tracing_on", "0"));
	ASSERT_EQ(0, write_file(TRACEFS "/trace", ""));
	ASSERT_EQ(0, write_file(TRACEFS "/events/kmmu/enable", "1"));
	self->enabled = true;
	ASSERT_EQ(0, write_file(TRACEFS "/tracing_on", "1"));
	KMMU_VM_CREATE(NULL, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, PAGES * SZ_4K));
	memset(self->mem.addr, 0, PAGES * SZ_4K);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, GPA, PAGES * SZ_4K, self->mem.addr));
	ASSERT_EQ(0, kmmu_vcpu_create(self->vm, 0, &self->vcpu));
}

FIXTURE_TEARDOWN(trace)
{
	if (self->enabled) {
		write_file(TRACEFS "/events/kmmu/enable", "0");
		write_file(TRACEFS "/trace", "");
	}
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
}

/* A line of @trace with every one of the NULL-terminated words. */
static bool has_line(const char *trace, const char *const *words)
{
	const char *line = trace;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int i;

		for (i = 0; words[i]; i++)
			if (!memmem(line, len, words[i], strlen(words[i])))
				break;
		if (!words[i])
			return true;
		line = end ? end + 1 : NULL;
	}
	return false;
}

KMMU_TEST_F(trace, every_event_names_what_it_did)
{
	struct kmmu_workload wl = kmmu_wl_seq(GPA, PAGES * SZ_4K, 100, 1);
	static const char *const what[5] = { "fault", "SPTE change", "aging", "flush", "zap" };
	char gpa[32], pid[32];
	struct kmmu_run run;
	uint64_t young;
	bool seen[5];
	char *t;
	int i;

	ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu, &wl, &run));
	ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	ASSERT_EQ(0, kmmu_vm_age(self->vm, GPA, PAGES * SZ_4K, 0, KMMU_AGE_FLUSH, &young, NULL));
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, GPA, PAGES * SZ_4K, 0, 0));
	ASSERT_EQ(0, write_file(TRACEFS "/tracing_on", "0"));

	t = read_trace();
	ASSERT_NE(NULL, t);
	snprintf(gpa, sizeof(gpa), "gpa %llx", (unsigned long long)GPA + 3 * SZ_4K);
	snprintf(pid, sizeof(pid), "pid %d", getpid());
	seen[0] = has_line(t, (const char *const[]){ "kmmu_fault:", "vcpu 0", gpa, "write", NULL });
	seen[1] = has_line(t, (const char *const[]){ "kmmu_spte_changed:", "level 1", NULL });
	seen[2] = has_line(t, (const char *const[]){ "kmmu_age:", "clear", "young 8", NULL });
	seen[3] = has_line(t, (const char *const[]){ "kmmu_flush:", pid, NULL });
	seen[4] = has_line(t, (const char *const[]){ "kmmu_zap:", "leaves", "gfn 100000-100008",
						     NULL });
	for (i = 0; i < 5; i++) {
		EXPECT_TRUE(seen[i]) {
			TH_LOG("no %s line in the trace:\n%.4000s", what[i], t);
		}
	}
	free(t);
}

TEST_HARNESS_MAIN
