// SPDX-License-Identifier: GPL-2.0
/*
 * Data integrity through the MMU: every word vCPUs write lands exactly where
 * the host reads it and nowhere else, every word the host writes is what
 * vCPUs read, on 4K leaves and on 2M leaves (THP, hugetlb), across slots
 * whose host pages do or do not line up with guest huge pages, and across a
 * host discard that replaces pages under the guest.
 *
 * The host keeps a copy of what each word of guest memory must hold and
 * compares all of it after every phase, so a write that went to the wrong
 * page, the wrong offset or a page the host no longer maps shows up as a
 * word that differs, with the gpa it was meant for encoded in its value.
 */
#include <pthread.h>
#include <stdlib.h>

#include "test_util.h"

#define SZ_1M		0x100000ULL

/*
 * Diagnostics go to stderr: the harness runs each test in a child that ends
 * with _exit(), which would drop what stdout still buffers.
 */
#define diag(fmt, ...)	fprintf(stderr, "# " fmt, ##__VA_ARGS__)

#define DATA_GPA	0x100000000ULL	/* 1G-aligned: guest huge pages can line up */
#define DATA_GPA2	0x140000000ULL	/* a second slot, far from the first */
#define DATA_SIZE	(4 * SZ_1M)
#define NR_VCPUS	4
#define MAX_REGIONS	2

/* Strides that are not multiples of the page size visit every page offset. */
#define STRIDE_COARSE	1032	/* 129 words: a few accesses per page */
#define STRIDE_FINE	520	/* 65 words */

/*
 * A written value is stamp ^ gpa; the stamp sits above any gpa used here and
 * names the phase and the vCPU, so a wrong word says who wrote it and for
 * which gpa.
 */
#define STAMP_MAGIC	0x6b6dULL
static uint64_t stamp(unsigned int phase, unsigned int vcpu)
{
	return STAMP_MAGIC << 48 | (uint64_t)(phase & 0xff) << 40 | (uint64_t)vcpu << 36;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t x = (*state += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Guest memory the host can see: a slot's range and what each word must hold. */
struct region {
	uint64_t gpa;
	uint8_t *hva;
	uint64_t size;
	uint64_t *expect;
};

FIXTURE(data) {
	struct kmmu_vm *vm;
	struct kmmu_vcpu *vcpu[NR_VCPUS];
	struct kmmu_mem mem[MAX_REGIONS];
	struct region rg[MAX_REGIONS];
	int nr_rg;
	/* The part of guest memory each vCPU owns: vCPUs never share a word. */
	uint64_t vgpa[NR_VCPUS];
	uint64_t vsize[NR_VCPUS];
	unsigned int phase;
	uint64_t seed;
};

FIXTURE_VARIANT(data) {
	struct kmmu_vm_config cfg;
};

KMMU_ADD_FORMAT_VARIANTS(data);

FIXTURE_SETUP(data)
{
	int i;

	KMMU_REQUIRE_BACKEND();
	KMMU_VM_CREATE(&variant->cfg, &self->vm);
	for (i = 0; i < NR_VCPUS; i++)
		ASSERT_EQ(0, kmmu_vcpu_create(self->vm, i, &self->vcpu[i]));
	/* Fixed per format, so a failure replays with the same choices. */
	self->seed = 0x5eed0000 + variant->cfg.spte_format * 16 + variant->cfg.flags;
}

FIXTURE_TEARDOWN(data)
{
	int i;

	kmmu_vm_free(self->vm);
	for (i = 0; i < MAX_REGIONS; i++) {
		kmmu_mem_free(&self->mem[i]);
		free(self->rg[i].expect);
	}
	EXPECT_EQ(0, kmmu_lib_leak_check());
}

/*
 * Back [gpa, gpa + size) with @backing in the next memslot, the host pages
 * starting @hva_off bytes into a fresh allocation.  Fresh memory reads as
 * zeros, which is where the host's copy starts.
 */
static int data_add_region(FIXTURE_DATA(data) *self, enum kmmu_backing backing, uint64_t gpa,
			   uint64_t size, uint64_t hva_off)
{
	struct region *r = &self->rg[self->nr_rg];
	struct kmmu_mem *m = &self->mem[self->nr_rg];
	int ret;

	ret = kmmu_mem_alloc(m, backing, size + hva_off);
	if (ret)
		return ret;
	r->gpa = gpa;
	r->hva = (uint8_t *)m->addr + hva_off;
	r->size = size;
	r->expect = calloc(size / 8, sizeof(uint64_t));
	if (!r->expect)
		return -ENOMEM;
	ret = kmmu_vm_set_memslot(self->vm, self->nr_rg, 0, gpa, size, r->hva);
	if (ret)
		return ret;
	self->nr_rg++;
	return 0;
}

/* Split every region evenly between the vCPUs, in page-aligned parts. */
static void data_assign_vcpus(FIXTURE_DATA(data) *self)
{
	int per_rg = NR_VCPUS / self->nr_rg;
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		const struct region *r = &self->rg[i / per_rg];
		uint64_t part = (r->size / per_rg) & ~(SZ_4K - 1);

		self->vgpa[i] = r->gpa + (i % per_rg) * part;
		self->vsize[i] = part;
	}
}

/* One region of DATA_SIZE at DATA_GPA, a quarter per vCPU. */
static int data_setup_one(FIXTURE_DATA(data) *self, enum kmmu_backing backing)
{
	int ret = data_add_region(self, backing, DATA_GPA, DATA_SIZE, 0);

	if (!ret)
		data_assign_vcpus(self);
	return ret;
}

static struct region *gpa_region(FIXTURE_DATA(data) *self, uint64_t gpa)
{
	int i;

	for (i = 0; i < self->nr_rg; i++)
		if (gpa >= self->rg[i].gpa && gpa - self->rg[i].gpa < self->rg[i].size)
			return &self->rg[i];
	return NULL;
}

/* The word at @gpa as the host sees it, and what it must be. */
static uint64_t *gpa_word(FIXTURE_DATA(data) *self, uint64_t gpa)
{
	struct region *r = gpa_region(self, gpa);

	return (uint64_t *)(r->hva + (gpa - r->gpa));
}

static uint64_t *gpa_expect(FIXTURE_DATA(data) *self, uint64_t gpa)
{
	struct region *r = gpa_region(self, gpa);

	return &r->expect[(gpa - r->gpa) / 8];
}

/* ---- workloads ---- */

static struct kmmu_workload wl_make(uint32_t pattern, uint64_t gpa, uint64_t size,
				    uint64_t stride, uint64_t iterations, uint32_t write_pct,
				    uint64_t value, uint64_t seed)
{
	struct kmmu_workload wl = {
		.gpa = gpa,
		.size = size,
		.stride = pattern == KMMU_PATTERN_STRIDE ? stride : 0,
		.iterations = iterations,
		.seed = seed,
		.value = value,
		.pattern = pattern,
		.write_percent = write_pct,
		.flags = KMMU_WL_XOR_GPA,
	};

	return wl;
}

static uint64_t wl_step(const struct kmmu_workload *wl)
{
	return wl->pattern == KMMU_PATTERN_STRIDE ? wl->stride : SZ_4K;
}

/* Slots one pass visits: wl->gpa + i * step for i below this (uapi: one access per step). */
static uint64_t wl_per_pass(const struct kmmu_workload *wl)
{
	return (wl->size - 8) / wl_step(wl) + 1;
}

/* ---- running vCPUs in parallel ---- */

struct job {
	struct kmmu_vcpu *vcpu;
	struct kmmu_workload wl;
	struct kmmu_run run;
	int ret;
};

static void *job_thread(void *arg)
{
	struct job *job = arg;

	job->ret = kmmu_vcpu_run_workload(job->vcpu, &job->wl, &job->run);
	return NULL;
}

/* Run every job in a thread of its own and wait for all; -errno if one could not start. */
static int run_jobs(struct job *jobs, int n)
{
	pthread_t threads[NR_VCPUS];
	int i, started, err = 0;

	for (started = 0; started < n; started++) {
		err = pthread_create(&threads[started], NULL, job_thread, &jobs[started]);
		if (err)
			break;
	}
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return -err;
}

/* Every job ran its whole workload and nothing but DONE came out. */
static void check_jobs(struct __test_metadata *_metadata, struct job *jobs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		const struct kmmu_workload *wl = &jobs[i].wl;

		EXPECT_EQ(0, jobs[i].ret);
		EXPECT_EQ(KMMU_EXIT_DONE, jobs[i].run.exit_reason) {
			TH_LOG("vCPU %d: exit %u at gpa 0x%llx", i, jobs[i].run.exit_reason,
			       (unsigned long long)jobs[i].run.mmio.gpa);
		}
		EXPECT_EQ(wl_per_pass(wl) * wl->iterations, jobs[i].run.accesses);
	}
}

/* ---- the host's copy ---- */

/* A deterministic pattern's writes, applied to the host's copy. */
static void expect_writes(FIXTURE_DATA(data) *self, const struct kmmu_workload *wl)
{
	uint64_t i, n = wl_per_pass(wl);

	for (i = 0; i < n; i++) {
		uint64_t gpa = wl->gpa + i * wl_step(wl);

		*gpa_expect(self, gpa) = wl->value ^ gpa;
	}
}

/* What a deterministic read pattern must sum to. */
static uint64_t expect_read_sum(FIXTURE_DATA(data) *self, const struct kmmu_workload *wl)
{
	uint64_t i, sum = 0, n = wl_per_pass(wl);

	for (i = 0; i < n; i++)
		sum += *gpa_expect(self, wl->gpa + i * wl_step(wl));
	return sum * wl->iterations;
}

/* Compare every word of guest memory with the host's copy; return how many differ. */
static long verify_all(FIXTURE_DATA(data) *self, const char *when)
{
	long bad = 0;
	int i;

	for (i = 0; i < self->nr_rg; i++) {
		const struct region *r = &self->rg[i];
		const uint64_t *words = (const uint64_t *)r->hva;
		uint64_t w;

		for (w = 0; w < r->size / 8; w++) {
			uint64_t gpa = r->gpa + w * 8;

			if (words[w] == r->expect[w])
				continue;
			if (bad++ < 8)
				diag("%s: gpa 0x%llx holds 0x%llx, want 0x%llx (value ^ gpa = 0x%llx)\n",
				     when, (unsigned long long)gpa, (unsigned long long)words[w],
				     (unsigned long long)r->expect[w],
				     (unsigned long long)(words[w] ^ gpa));
		}
	}
	if (bad)
		diag("%s: %ld words differ\n", when, bad);
	return bad;
}

/* ---- phases: every vCPU runs the same kind of pass over its own part ---- */

/*
 * Every vCPU writes a fresh stamp with a deterministic pattern starting
 * @off bytes into its part, then the host checks every word.
 */
static void phase_write(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self,
			uint32_t pattern, uint64_t off, uint64_t stride)
{
	struct job jobs[NR_VCPUS];
	unsigned int phase = ++self->phase;
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		jobs[i].vcpu = self->vcpu[i];
		jobs[i].wl = wl_make(pattern, self->vgpa[i] + off, self->vsize[i] - off, stride,
				     1, 100, stamp(phase, i), 0);
	}
	ASSERT_EQ(0, run_jobs(jobs, NR_VCPUS));
	check_jobs(_metadata, jobs, NR_VCPUS);
	for (i = 0; i < NR_VCPUS; i++)
		expect_writes(self, &jobs[i].wl);
	EXPECT_EQ(0, verify_all(self, pattern == KMMU_PATTERN_STRIDE ? "stride write" :
				"sequential write"));
}

/*
 * Random writes: which slots a pass hits is the vCPU's choice, so each slot
 * must hold either what it held or the new value, most slots must have been
 * hit, and no word outside the slots may change.
 */
static void phase_write_random(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self)
{
	struct job jobs[NR_VCPUS];
	unsigned int phase = ++self->phase;
	long bad = 0;
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		jobs[i].vcpu = self->vcpu[i];
		jobs[i].wl = wl_make(KMMU_PATTERN_RANDOM, self->vgpa[i], self->vsize[i], 0, 3, 100,
				     stamp(phase, i), splitmix64(&self->seed));
	}
	ASSERT_EQ(0, run_jobs(jobs, NR_VCPUS));
	check_jobs(_metadata, jobs, NR_VCPUS);

	for (i = 0; i < NR_VCPUS; i++) {
		const struct kmmu_workload *wl = &jobs[i].wl;
		uint64_t s, hit = 0, n = wl_per_pass(wl);

		for (s = 0; s < n; s++) {
			uint64_t gpa = wl->gpa + s * SZ_4K;
			uint64_t got = *gpa_word(self, gpa);
			uint64_t *want = gpa_expect(self, gpa);

			if (got == (wl->value ^ gpa)) {
				*want = got;
				hit++;
			} else if (got != *want && bad++ < 8) {
				diag("random write: gpa 0x%llx holds 0x%llx, neither 0x%llx nor 0x%llx\n",
				     (unsigned long long)gpa, (unsigned long long)got,
				     (unsigned long long)*want,
				     (unsigned long long)(wl->value ^ gpa));
			}
		}
		/* 3n random picks of n slots miss about 5% of them. */
		EXPECT_LE(n / 2, hit) {
			TH_LOG("vCPU %d: only %llu of %llu pages written", i,
			       (unsigned long long)hit, (unsigned long long)n);
		}
	}
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, verify_all(self, "random write"));
}

/* Every vCPU reads its part with a deterministic pattern; sums must match the host's. */
static void phase_read(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self,
		       uint32_t pattern, uint64_t off, uint64_t stride)
{
	struct job jobs[NR_VCPUS];
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		jobs[i].vcpu = self->vcpu[i];
		jobs[i].wl = wl_make(pattern, self->vgpa[i] + off, self->vsize[i] - off, stride,
				     2, 0, 0, 0);
	}
	ASSERT_EQ(0, run_jobs(jobs, NR_VCPUS));
	check_jobs(_metadata, jobs, NR_VCPUS);
	for (i = 0; i < NR_VCPUS; i++) {
		EXPECT_EQ(expect_read_sum(self, &jobs[i].wl), jobs[i].run.read_sum) {
			TH_LOG("vCPU %d: %s read of 0x%llx+0x%llx", i,
			       pattern == KMMU_PATTERN_STRIDE ? "stride" : "sequential",
			       (unsigned long long)jobs[i].wl.gpa,
			       (unsigned long long)jobs[i].wl.size);
		}
	}
}

/*
 * Random reads: the host cannot know which slots are picked, so it gives
 * every slot of a vCPU's part one value of its own, different from every
 * other word around; a read of the wrong offset, of another vCPU's part or
 * of a stale page then changes the sum.
 */
static void phase_read_random(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self)
{
	struct job jobs[NR_VCPUS];
	uint64_t v[NR_VCPUS];
	int i;

	for (i = 0; i < NR_VCPUS; i++) {
		uint64_t s, n;

		jobs[i].vcpu = self->vcpu[i];
		jobs[i].wl = wl_make(KMMU_PATTERN_RANDOM, self->vgpa[i], self->vsize[i], 0, 2, 0,
				     0, splitmix64(&self->seed));
		v[i] = splitmix64(&self->seed) | 1;
		n = wl_per_pass(&jobs[i].wl);
		for (s = 0; s < n; s++) {
			uint64_t gpa = jobs[i].wl.gpa + s * SZ_4K;

			*gpa_word(self, gpa) = v[i];
			*gpa_expect(self, gpa) = v[i];
		}
	}
	ASSERT_EQ(0, run_jobs(jobs, NR_VCPUS));
	check_jobs(_metadata, jobs, NR_VCPUS);
	for (i = 0; i < NR_VCPUS; i++)
		EXPECT_EQ(jobs[i].run.accesses * v[i], jobs[i].run.read_sum);
}

/* The host writes data of its own into every word of guest memory. */
static void host_fill(FIXTURE_DATA(data) *self)
{
	int i;

	for (i = 0; i < self->nr_rg; i++) {
		struct region *r = &self->rg[i];
		uint64_t w;

		for (w = 0; w < r->size / 8; w++) {
			r->expect[w] = splitmix64(&self->seed);
			((uint64_t *)r->hva)[w] = r->expect[w];
		}
	}
}

static struct kmmu_vm_stats data_stats(struct __test_metadata *_metadata,
				       FIXTURE_DATA(data) *self)
{
	struct kmmu_vm_stats st;

	memset(&st, 0, sizeof(st));
	EXPECT_EQ(0, kmmu_vm_stats(self->vm, &st));
	return st;
}

/* Everything both directions can check, on whatever backs the regions. */
static void all_phases(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self)
{
	/* Never touched: the first accesses are reads, and they see zeros. */
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 0, STRIDE_COARSE);
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 0, 0);
	phase_write(_metadata, self, KMMU_PATTERN_STRIDE, 8, STRIDE_COARSE);
	phase_write_random(_metadata, self);
	/* The last word of every page. */
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, SZ_4K - 8, 0);
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 16, STRIDE_FINE);

	host_fill(self);
	phase_read(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 0, 0);
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 24, STRIDE_FINE);
	phase_read_random(_metadata, self);
	EXPECT_EQ(0, verify_all(self, "after reads"));
}

/* vCPUs write, the host reads: sequential, stride, random, at several offsets. */
KMMU_TEST_F(data, vcpu_writes_host_reads)
{
	struct kmmu_vm_stats st;

	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON));
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 0, 0);
	phase_write(_metadata, self, KMMU_PATTERN_STRIDE, 0, STRIDE_FINE);
	phase_write_random(_metadata, self);
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 8 * 37, 0);
	phase_write(_metadata, self, KMMU_PATTERN_STRIDE, SZ_4K - 8, STRIDE_COARSE);
	phase_write_random(_metadata, self);

	/*
	 * Every page mapped once; a kernel with THP always may map some 2M at
	 * once, and under memory pressure may have taken some away since
	 * (migration zaps them), so on dev this is an upper bound.
	 */
	st = data_stats(_metadata, self);
	EXPECT_LT(0, st.faults);
	/* EXPECT_*() is two statements: braces keep both under their if. */
	if (kmmu_host_quiet()) {
		EXPECT_EQ(DATA_SIZE / SZ_4K, st.pages_4k);
		EXPECT_EQ(0, st.pages_2m);
	} else {
		EXPECT_GE(DATA_SIZE / SZ_4K, st.pages_4k + st.pages_2m * (SZ_2M / SZ_4K));
	}
}

/* The host writes, vCPUs read: the sums they see are the host's. */
KMMU_TEST_F(data, host_writes_vcpu_reads)
{
	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON));
	/* Not yet mapped in the guest: the first reads fault the host's data in. */
	host_fill(self);
	phase_read(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 0, 0);
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 8, STRIDE_COARSE);
	phase_read_random(_metadata, self);
	/* Already mapped: new host data must show through the same SPTEs. */
	host_fill(self);
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 0, STRIDE_FINE);
	phase_read(_metadata, self, KMMU_PATTERN_SEQUENTIAL, SZ_4K - 8, 0);
	phase_read_random(_metadata, self);
	EXPECT_EQ(0, verify_all(self, "after reads"));
}

/* Zero-fill, reads, then writes (a copy-on-write on a real host), all on 4K pages. */
KMMU_TEST_F(data, anon_all_phases)
{
	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON));
	all_phases(_metadata, self);
}

/*
 * 2M leaves exactly where the host maps 2M, 4K ones everywhere else, for a
 * VM whose only slot is [@hva, @hva + @size), 2M-aligned.  Where the host
 * maps huge is its own choice -- a kernel serves the first reads from the
 * huge zero page and breaks it into 4K pages on the first write -- but a
 * quiet host keeps to it, so kmmu's leaves can be checked against it.  A
 * busy one may have moved pages since: then only the data is checked.
 */
static void expect_host_leaves(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self,
			       void *hva, uint64_t size, long *huge)
{
	struct kmmu_host_pages host;
	struct kmmu_vm_stats st;
	int ret;

	st = data_stats(_metadata, self);
	EXPECT_LT(0, st.faults);
	ret = kmmu_host_pages(hva, size, &host);
	if (ret == -EOPNOTSUPP || !kmmu_host_quiet()) {
		TH_LOG("%ld 2M leaves: the host's mapping cannot be checked here", st.pages_2m);
		*huge = -1;
		return;
	}
	ASSERT_EQ(0, ret);
	*huge = host.huge;
	EXPECT_EQ(host.huge / 512, st.pages_2m);
	EXPECT_EQ((long)(size / SZ_4K) - host.huge, st.pages_4k);
}

/*
 * On 2M backings every vCPU's part is half of a 2M leaf shared with another
 * vCPU, so offsets inside huge leaves are checked word by word.
 * @all_huge: the host maps every 2M huge (hugetlbfs; THP on the host model).
 */
static void huge_phases(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self,
			bool all_huge)
{
	long huge;

	all_phases(_metadata, self);
	expect_host_leaves(_metadata, self, self->rg[0].hva, DATA_SIZE, &huge);
	if (all_huge && huge >= 0)
		EXPECT_EQ(DATA_SIZE / SZ_4K, huge);
}

KMMU_TEST_F(data, thp_all_phases)
{
	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON_THP));
	huge_phases(_metadata, self, kmmu_backend() == KMMU_BACKEND_USER);
}

KMMU_TEST_F(data, hugetlb_2m_all_phases)
{
	int ret = data_setup_one(self, KMMU_BACKING_HUGETLB_2M);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "no 2M hugetlb pages reserved on this host");
	ASSERT_EQ(0, ret);
	huge_phases(_metadata, self, true);
}

/*
 * Slots that a 2M leaf may only partly cover: region 0 starts and ends 4K
 * into a huge page (host and guest offsets agree, so only its middle 2M can
 * be one leaf), region 1's host pages sit 4K off the guest's 2M boundaries
 * (so no leaf may be 2M: one would map the wrong 4K pages).
 */
KMMU_TEST_F(data, thp_partial_and_misaligned_slots)
{
	struct kmmu_host_pages host;
	struct kmmu_vm_stats st;
	int ret;

	ASSERT_EQ(0, data_add_region(self, KMMU_BACKING_ANON_THP, DATA_GPA + SZ_4K,
				     3 * SZ_2M - 2 * SZ_4K, SZ_4K));
	ASSERT_EQ(0, data_add_region(self, KMMU_BACKING_ANON_THP, DATA_GPA2 + SZ_4K,
				     2 * SZ_2M, 0));
	data_assign_vcpus(self);
	all_phases(_metadata, self);

	/*
	 * Region 0's middle 2M may be one leaf, if the host maps it huge;
	 * region 1 has none, whatever the host maps.
	 */
	st = data_stats(_metadata, self);
	ret = kmmu_host_pages(self->rg[0].hva + SZ_2M - SZ_4K, SZ_2M, &host);
	if (ret == -EOPNOTSUPP || !kmmu_host_quiet()) {
		EXPECT_GE(1, st.pages_2m);
		return;
	}
	ASSERT_EQ(0, ret);
	if (kmmu_backend() == KMMU_BACKEND_USER)
		EXPECT_EQ(512, host.huge);
	EXPECT_EQ(host.huge / 512, st.pages_2m);
	EXPECT_EQ((long)((5 * SZ_2M - 2 * SZ_4K) / SZ_4K) - host.huge, st.pages_4k);
}

/* ---- discard ---- */

struct discard_range {
	uint64_t off;		/* from the start of region 0 */
	uint64_t len;
};

/*
 * Discard each range on the host, and check that the guest sees the new,
 * zeroed pages: it reads zeros there, its other data is intact, and what it
 * writes next is what the host reads.  With a missed invalidation the guest
 * would keep using the old pages: reading old data, and writing where the
 * host no longer looks.
 */
static void discard_phases(struct __test_metadata *_metadata, FIXTURE_DATA(data) *self,
			   const struct discard_range *ranges, int nr)
{
	struct region *r = &self->rg[0];
	struct kmmu_vm_stats before, after;
	int i;

	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 0, 0);
	phase_write(_metadata, self, KMMU_PATTERN_STRIDE, 8, STRIDE_COARSE);
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, SZ_4K - 8, 0);
	before = data_stats(_metadata, self);

	for (i = 0; i < nr; i++) {
		ASSERT_EQ(0, kmmu_host_discard(r->hva + ranges[i].off, ranges[i].len));
		memset(&r->expect[ranges[i].off / 8], 0, ranges[i].len);
	}
	/* The host sees zeros: the pages really went. */
	EXPECT_EQ(0, verify_all(self, "after discard"));

	/* So does the guest, word by word over what was discarded. */
	for (i = 0; i < nr; i++) {
		struct kmmu_workload wl = wl_make(KMMU_PATTERN_STRIDE, r->gpa + ranges[i].off,
						  ranges[i].len, STRIDE_FINE, 1, 0, 0, 0);
		struct kmmu_run run;

		ASSERT_EQ(0, kmmu_vcpu_run_workload(self->vcpu[i % NR_VCPUS], &wl, &run));
		EXPECT_EQ(KMMU_EXIT_DONE, run.exit_reason);
		EXPECT_EQ(wl_per_pass(&wl), run.accesses);
		EXPECT_EQ(0, run.read_sum) {
			TH_LOG("discarded range 0x%llx+0x%llx still reads old data",
			       (unsigned long long)wl.gpa, (unsigned long long)wl.size);
		}
	}
	/* And the rest is as it was. */
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 0, STRIDE_FINE);
	phase_read(_metadata, self, KMMU_PATTERN_SEQUENTIAL, SZ_4K - 8, 0);

	/* New writes reach the new pages. */
	phase_write(_metadata, self, KMMU_PATTERN_STRIDE, 0, STRIDE_FINE);
	phase_write(_metadata, self, KMMU_PATTERN_SEQUENTIAL, 16, 0);
	phase_write_random(_metadata, self);
	phase_read(_metadata, self, KMMU_PATTERN_STRIDE, 8, STRIDE_COARSE);

	after = data_stats(_metadata, self);
	EXPECT_LE(before.invalidations + nr, after.invalidations);
	EXPECT_LT(before.zapped_leafs, after.zapped_leafs);
}

/* Random 4K-granular ranges, one of them across the border of two vCPUs' parts. */
static int random_ranges(FIXTURE_DATA(data) *self, struct discard_range *ranges, int max)
{
	uint64_t pages = self->rg[0].size / SZ_4K;
	int i;

	ranges[0].off = self->vsize[0] - 2 * SZ_4K;
	ranges[0].len = 4 * SZ_4K;
	for (i = 1; i < max; i++) {
		uint64_t len = 1 + splitmix64(&self->seed) % 16;
		uint64_t first = splitmix64(&self->seed) % (pages - len);

		ranges[i].off = first * SZ_4K;
		ranges[i].len = len * SZ_4K;
	}
	return max;
}

KMMU_TEST_F(data, discard_anon)
{
	struct discard_range ranges[8];
	int nr;

	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON));
	nr = random_ranges(self, ranges, 8);
	discard_phases(_metadata, self, ranges, nr);
}

/* Part of a huge page (the host splits it) and a whole one. */
KMMU_TEST_F(data, discard_thp)
{
	struct discard_range ranges[] = {
		{ .off = SZ_1M + 5 * SZ_4K, .len = 3 * SZ_4K },
		{ .off = SZ_2M, .len = SZ_2M },
	};

	ASSERT_EQ(0, data_setup_one(self, KMMU_BACKING_ANON_THP));
	discard_phases(_metadata, self, ranges, 2);
}

/* hugetlb pages go whole. */
KMMU_TEST_F(data, discard_hugetlb_2m)
{
	struct discard_range ranges[] = {
		{ .off = 0, .len = SZ_2M },
	};
	int ret = data_setup_one(self, KMMU_BACKING_HUGETLB_2M);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "no 2M hugetlb pages reserved on this host");
	ASSERT_EQ(0, ret);
	discard_phases(_metadata, self, ranges, 1);
}

TEST_HARNESS_MAIN
