// SPDX-License-Identifier: GPL-2.0
/*
 * The binary statistics fd (KMMU_GET_STATS_FD), read the way a reader of
 * KVM's reads it: a well-formed header, id and descriptors, values that
 * agree with KMMU_GET_STATS and with what the vCPUs did, reads from any
 * offset, and an fd that outlives the VM's.
 */
#include <unistd.h>

#include "test_util.h"

#define GPA	0x100000000ULL
#define PAGES	32
#define SIZE	(PAGES * SZ_4K)

FIXTURE(stats) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu[2];
	struct kmmu_mem mem;
	int vm_fd, vcpu_fd[2];
};

FIXTURE_VARIANT(stats) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(stats);

FIXTURE_SETUP(stats)
{
	int i;

	self->vm_fd = self->vcpu_fd[0] = self->vcpu_fd[1] = -1;
	if (!kmmu_backend_available())
		return;
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	ASSERT_EQ(0, kmmu_mem_alloc(&self->mem, KMMU_BACKING_ANON, SIZE));
	memset(self->mem.addr, 0, SIZE);
	ASSERT_EQ(0, kmmu_vm_set_memslot(self->vm, 0, 0, GPA, SIZE, self->mem.addr));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
		self->vcpu_fd[i] = kmmu_vcpu_stats_fd(self->vcpu[i]);
		ASSERT_LE(0, self->vcpu_fd[i]);
	}
	self->vm_fd = kmmu_vm_stats_fd(self->vm);
	ASSERT_LE(0, self->vm_fd);
}

FIXTURE_TEARDOWN(stats)
{
	int i;

	for (i = 0; i < 2; i++)
		if (self->vcpu_fd[i] >= 0)
			kmmu_close(self->vcpu_fd[i]);
	if (self->vm_fd >= 0)
		kmmu_close(self->vm_fd);
	kmmu_vm_free(self->vm);
	kmmu_mem_free(&self->mem);
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/* The whole of a stats fd, in one read. */
static uint8_t *read_all(struct __test_metadata *_metadata, int fd, size_t *len)
{
	static uint8_t buf[65536];
	long n = kmmu_stats_pread(fd, buf, sizeof(buf), 0);

	EXPECT_LT(0, n);
	EXPECT_GT((long)sizeof(buf), n);
	*len = n > 0 ? n : 0;
	return buf;
}

/* Header, id, descriptors: the layout KVM_GET_STATS_FD documents. */
static void check_layout(struct __test_metadata *_metadata, int fd, const char *id)
{
	const struct kmmu_stats_header *h;
	size_t len, dsize;
	uint32_t i, j;
	uint8_t *buf;

	buf = read_all(_metadata, fd, &len);
	ASSERT_LE(sizeof(*h), len);
	h = (void *)buf;
	EXPECT_EQ(0, h->flags);
	ASSERT_LE(8, h->name_size);
	EXPECT_EQ(sizeof(*h), h->id_offset);
	EXPECT_EQ(h->id_offset + h->name_size, h->desc_offset);
	dsize = sizeof(struct kmmu_stats_desc) + h->name_size;
	EXPECT_EQ(h->desc_offset + h->num_desc * dsize, h->data_offset);
	EXPECT_EQ(h->data_offset + h->num_desc * sizeof(uint64_t), len);
	EXPECT_STREQ(id, (char *)buf + h->id_offset);
	ASSERT_LE(8, h->num_desc);

	for (i = 0; i < h->num_desc; i++) {
		const struct kmmu_stats_desc *d = (void *)(buf + h->desc_offset + i * dsize);
		uint32_t type = d->flags & KMMU_STATS_TYPE_MASK;

		TH_LOG("%s", d->name);
		EXPECT_LT(0, (int)strnlen(d->name, h->name_size));
		EXPECT_GT(h->name_size, strnlen(d->name, h->name_size));
		EXPECT_TRUE(type == KMMU_STATS_TYPE_CUMULATIVE || type == KMMU_STATS_TYPE_INSTANT ||
			    type == KMMU_STATS_TYPE_PEAK);
		EXPECT_EQ(0, d->flags & ~(KMMU_STATS_TYPE_MASK | KMMU_STATS_UNIT_MASK |
					  KMMU_STATS_BASE_MASK));
		EXPECT_EQ(KMMU_STATS_BASE_POW10, d->flags & KMMU_STATS_BASE_MASK);
		EXPECT_EQ(1, d->size);
		EXPECT_EQ(0, d->bucket_size);
		EXPECT_EQ(0, d->offset % sizeof(uint64_t));
		EXPECT_GT(h->num_desc * sizeof(uint64_t), d->offset);
		for (j = 0; j < i; j++) {
			const struct kmmu_stats_desc *e =
				(void *)(buf + h->desc_offset + j * dsize);

			EXPECT_NE(0, strncmp(d->name, e->name, h->name_size));
			EXPECT_NE(d->offset, e->offset);
		}
	}
}

TEST_F(stats, layout_as_kvm_documents_it)
{
	char id[64];

	KMMU_REQUIRE_BACKEND();
	snprintf(id, sizeof(id), "kmmu-%d", getpid());
	check_layout(_metadata, self->vm_fd, id);
	snprintf(id, sizeof(id), "kmmu-%d/vcpu-1", getpid());
	check_layout(_metadata, self->vcpu_fd[1], id);
}

static uint64_t stat(struct __test_metadata *_metadata, int fd, const char *name)
{
	uint64_t v = ~0ULL;

	EXPECT_EQ(0, kmmu_stats_get(fd, name, &v)) {
		TH_LOG("%s", name);
	}
	return v;
}

/*
 * The VM's values are KMMU_GET_STATS's; each vCPU's add up to the VM's,
 * and count what RUN told its caller.
 */
TEST_F(stats, values_agree)
{
	static const char * const vm_names[] = {
		"pages_4k", "pages_2m", "pt_pages", "faults", "fast_faults",
		"tlb_flushes", "zapped_leafs", "memslot_generation",
		"max_write_hold_ns",
	};
	uint64_t faults[2] = {}, runs[2] = {}, vals[ARRAY_SIZE(vm_names)];
	struct kmmu_vm_stats st, after;
	struct kmmu_workload wl;
	struct kmmu_run run;
	unsigned int k;
	uint32_t f;
	int i, try;

	KMMU_REQUIRE_BACKEND();
	for (i = 0; i < 2; i++) {
		wl = kmmu_wl_seq(GPA + i * SIZE / 2, SIZE / 2, 100, i + 1);
		ASSERT_EQ(0, kmmu_vcpu_set_workload(self->vcpu[i], &wl));
		do {
			memset(&run, 0, sizeof(run));
			run.max_accesses = 5;
			ASSERT_EQ(0, kmmu_vcpu_run(self->vcpu[i], &run));
			faults[i] += run.faults;
			runs[i]++;
		} while (run.exit_reason == KMMU_EXIT_BUDGET);
		ASSERT_EQ(KMMU_EXIT_DONE, run.exit_reason);
	}
	ASSERT_EQ(0, kmmu_vm_zap(self->vm, GPA, SIZE / 4, 0, 0));

	/*
	 * On a busy host, reclaim and compaction zap leaves and flush while
	 * the values are read: compare them only in a window where two
	 * KMMU_GET_STATS around the reads agree, which comes soon.
	 */
	for (try = 0; ; try++) {
		ASSERT_EQ(0, kmmu_vm_stats(self->vm, &st));
		for (k = 0; k < ARRAY_SIZE(vm_names); k++)
			vals[k] = stat(_metadata, self->vm_fd, vm_names[k]);
		ASSERT_EQ(0, kmmu_vm_stats(self->vm, &after));
		if (kmmu_host_quiet() || try == 20 || !memcmp(&st, &after, sizeof(st)))
			break;
	}
	EXPECT_EQ(st.pages_4k, vals[0]);
	EXPECT_EQ(st.pages_2m, vals[1]);
	EXPECT_EQ(st.pt_pages, vals[2]);
	EXPECT_EQ(st.faults, vals[3]);
	EXPECT_EQ(st.fast_faults, vals[4]);
	EXPECT_EQ(st.tlb_flushes, vals[5]);
	EXPECT_EQ(st.zapped_leafs, vals[6]);
	EXPECT_EQ(st.memslot_generation, vals[7]);
	EXPECT_LE(st.max_write_hold_ns, vals[8]);
	/* A busy host may have zapped some of the rest meanwhile. */
	if (kmmu_host_quiet()) {
		EXPECT_EQ(PAGES - PAGES / 4, vals[0]);
	} else {
		EXPECT_GE(PAGES - PAGES / 4, vals[0]);
	}

	for (i = 0; i < 2; i++) {
		EXPECT_EQ(faults[i], stat(_metadata, self->vcpu_fd[i], "faults"));
		EXPECT_EQ(runs[i], stat(_metadata, self->vcpu_fd[i], "exits"));
		EXPECT_LE(1, stat(_metadata, self->vcpu_fd[i], "root_loads"));
	}
	EXPECT_EQ(st.faults, stat(_metadata, self->vcpu_fd[0], "faults") +
			     stat(_metadata, self->vcpu_fd[1], "faults"));
	/* The write hold is a peak in nanoseconds, as KVM describes time. */
	f = 0;
	{
		const struct kmmu_stats_header *h;
		size_t len, dsize;
		uint8_t *buf = read_all(_metadata, self->vm_fd, &len);
		uint32_t k;

		h = (void *)buf;
		dsize = sizeof(struct kmmu_stats_desc) + h->name_size;
		for (k = 0; k < h->num_desc; k++) {
			const struct kmmu_stats_desc *d = (void *)(buf + h->desc_offset + k * dsize);

			if (!strcmp(d->name, "max_write_hold_ns")) {
				f = d->flags;
				EXPECT_EQ(-9, d->exponent);
			}
		}
	}
	EXPECT_EQ(KMMU_STATS_TYPE_PEAK | KMMU_STATS_UNIT_SECONDS, f);
	EXPECT_EQ(-ENOENT, kmmu_stats_get(self->vm_fd, "no_such_stat", &vals[0]));
}

/* Any offset, any size: the same bytes as one read of the whole. */
TEST_F(stats, reads_from_anywhere)
{
	uint8_t whole[65536], piece[64], *all;
	size_t len, off;
	long n;

	KMMU_REQUIRE_BACKEND();
	all = read_all(_metadata, self->vcpu_fd[0], &len);
	memcpy(whole, all, len);
	for (off = 0; off < len; off += n) {
		n = kmmu_stats_pread(self->vcpu_fd[0], piece, 1 + off % sizeof(piece), off);
		ASSERT_LT(0, n);
		ASSERT_EQ(0, memcmp(whole + off, piece, n)) {
			TH_LOG("at %zu", off);
		}
	}
	EXPECT_EQ(0, kmmu_stats_pread(self->vcpu_fd[0], piece, sizeof(piece), len));
	EXPECT_EQ(0, kmmu_stats_pread(self->vcpu_fd[0], piece, sizeof(piece), len + 4096));
	EXPECT_EQ(-EINVAL, kmmu_stats_pread(self->vcpu_fd[0], piece, sizeof(piece), -1));
	EXPECT_EQ(-EFAULT, kmmu_stats_pread(self->vcpu_fd[0], (void *)16, sizeof(piece), 0));
}

/* Bad requests get a clear errno; the fd holds the VM after its own fds are gone. */
TEST_F(stats, fd_lifetime_and_bad_input)
{
	uint64_t pages;
	int sys, i;

	KMMU_REQUIRE_BACKEND();
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vm->fd, KMMU_GET_STATS_FD, 1));
	EXPECT_EQ(-EINVAL, kmmu_ioctl(self->vcpu[0]->fd, KMMU_GET_STATS_FD, 1));
	sys = kmmu_open_dev();
	ASSERT_LE(0, sys);
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(sys, KMMU_GET_STATS_FD, 0));
	kmmu_close(sys);
	EXPECT_EQ(-ENOTTY, kmmu_ioctl(self->vm_fd, KMMU_GET_STATS, 0));

	EXPECT_EQ(KMMU_EXIT_DONE, ({
		struct kmmu_workload wl = kmmu_wl_seq(GPA, SIZE, 0, 0);
		struct kmmu_run run;

		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[0], &wl, &run));
		run.exit_reason;
	}));
	kmmu_vm_free(self->vm);
	self->vm = NULL;
	/* The VM lives on for its stats fds, and still reads right. */
	EXPECT_EQ(0, kmmu_stats_get(self->vm_fd, "pages_4k", &pages));
	EXPECT_EQ(PAGES, pages);
	EXPECT_EQ(0, kmmu_stats_get(self->vcpu_fd[0], "faults", &pages));
	EXPECT_LE(PAGES, pages);
	for (i = 0; i < 2; i++) {
		kmmu_close(self->vcpu_fd[i]);
		self->vcpu_fd[i] = -1;
	}
	kmmu_close(self->vm_fd);
	self->vm_fd = -1;
}

TEST_HARNESS_MAIN
