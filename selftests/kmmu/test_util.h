/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared pieces of the kmmu selftests: the VM configurations every fixture
 * runs under, and small helpers built on selftests/lib.
 */
#ifndef KMMU_TEST_UTIL_H
#define KMMU_TEST_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kselftest_harness.h"
#include "kmmu_lib.h"

#define SZ_4K	0x1000ULL
#define SZ_2M	0x200000ULL
#define SZ_1G	0x40000000ULL

/*
 * Every SPTE configuration a VM can have; fixtures that take
 * FIXTURE_VARIANT(x) { struct kmmu_vm_config cfg; } add them all with
 * KMMU_ADD_FORMAT_VARIANTS(x).
 */
#define KMMU_ADD_FORMAT_VARIANTS(fixture)					\
FIXTURE_VARIANT_ADD(fixture, ept) {						\
	.cfg = { .spte_format = KMMU_SPTE_FORMAT_EPT },				\
};										\
FIXTURE_VARIANT_ADD(fixture, ept_ad_disabled) {					\
	.cfg = { .spte_format = KMMU_SPTE_FORMAT_EPT,				\
		 .flags = KMMU_VM_AD_DISABLED },				\
};										\
FIXTURE_VARIANT_ADD(fixture, ept_suppress_ve) {					\
	.cfg = { .spte_format = KMMU_SPTE_FORMAT_EPT,				\
		 .flags = KMMU_VM_NONPRESENT_SUPPRESS_VE },			\
};										\
FIXTURE_VARIANT_ADD(fixture, npt) {						\
	.cfg = { .spte_format = KMMU_SPTE_FORMAT_NPT },				\
}

/*
 * Whether the host leaves the test's memory alone, so that what the MMU
 * shows (SPTE levels and bits, statistics, faults taken) is exactly what
 * the test did.  Always on the user backend, whose host model acts only
 * when told.  On dev, the QEMU bench makes its guest quiet (no proactive
 * compaction; khugepaged idle, and 4K memory MADV_NOHUGEPAGE besides;
 * nothing to reclaim), except in its pressure run, which
 * sets KMMU_HOST_BUSY=1: compaction, THP split and collapse, reclaim and
 * MGLRU aging then move, zap and age the test's pages whenever they like,
 * and only bounds and the data itself can be checked.
 */
static inline bool kmmu_host_quiet(void)
{
	return kmmu_backend() == KMMU_BACKEND_USER || !getenv("KMMU_HOST_BUSY");
}

/*
 * What an aging pass counted: exactly @want_young young and @want_old old
 * pages when the host is quiet.  Otherwise the host ages and zaps too
 * (MGLRU calls clear_young; reclaim and compaction zap), so pages only go
 * from young to old or away: at most @want_young young, at most
 * @want_young + @want_old found at all.
 */
static inline void kmmu_expect_aged(struct __test_metadata *_metadata, uint64_t want_young,
				    uint64_t want_old, uint64_t young, uint64_t old)
{
	if (kmmu_host_quiet()) {
		EXPECT_EQ(want_young, young);
		EXPECT_EQ(want_old, old);
	} else {
		EXPECT_GE(want_young, young);
		EXPECT_GE(want_young + want_old, young + old);
	}
}

/* SKIP (exit 4) when the backend cannot run here, as hmm-tests does. */
#define KMMU_REQUIRE_BACKEND()							\
	do {									\
		if (!kmmu_backend_available())					\
			SKIP(return, "backend %s not available (no /dev/kmmu?)",	\
			     kmmu_backend_name());					\
	} while (0)

/*
 * Make a VM like @cfg into *@vmp, or fail the test; on the hw backend, skip
 * the test instead (its body and teardown: use it in a setup before
 * anything the teardown frees) when hardware vCPUs cannot run a VM like
 * it, saying why.
 */
#define KMMU_VM_CREATE(cfg, vmp)						\
	do {									\
		const char *__why = kmmu_hw_refusal(cfg);			\
										\
		if (__why)							\
			SKIP(longjmp(_metadata->env, 1), "hw backend: %s", __why); \
		ASSERT_EQ(0, kmmu_vm_create(cfg, vmp));				\
	} while (0)

/* The name KMMU_ADD_FORMAT_VARIANTS() gives the variant of @cfg. */
static inline const char *kmmu_format_variant_name(const struct kmmu_vm_config *cfg)
{
	if (cfg->spte_format == KMMU_SPTE_FORMAT_NPT)
		return "npt";
	if (cfg->flags & KMMU_VM_AD_DISABLED)
		return "ept_ad_disabled";
	if (cfg->flags & KMMU_VM_NONPRESENT_SUPPRESS_VE)
		return "ept_suppress_ve";
	return "ept";
}

/*
 * Skip the variants that KMMU_TEST_FORMATS (a comma-separated list of
 * variant names; unset = all) leaves out: the 6.1 harness has no filter
 * of its own, and the slowest builds (TSan) run one format only.
 */
#define KMMU_REQUIRE_FORMAT(cfg)						\
	do {									\
		const char *_want = getenv("KMMU_TEST_FORMATS");		\
		const char *_name = kmmu_format_variant_name(cfg);		\
		size_t _len = strlen(_name);					\
		const char *_p = _want;						\
										\
		while (_p && (strncmp(_p, _name, _len) ||			\
			      (_p[_len] && _p[_len] != ',')))			\
			_p = strchr(_p, ',') ? strchr(_p, ',') + 1 : NULL;	\
		if (_want && !_p)						\
			SKIP(return, "format %s not in KMMU_TEST_FORMATS", _name); \
	} while (0)

/*
 * TEST_F whose body does not run when the fixture's setup skipped: the
 * kselftest_harness.h of Linux 6.1 runs it anyway.
 */
#define KMMU_TEST_F(fixture, name)						\
	static void fixture##_##name##_body(struct __test_metadata *_metadata,	\
					    FIXTURE_DATA(fixture) *self,	\
					    const FIXTURE_VARIANT(fixture) *variant); \
	TEST_F(fixture, name)							\
	{									\
		if (!_metadata->skip)						\
			fixture##_##name##_body(_metadata, self, variant);	\
	}									\
	static void fixture##_##name##_body(struct __test_metadata *_metadata,	\
					    FIXTURE_DATA(fixture) *self,	\
					    const FIXTURE_VARIANT(fixture) *variant)

/* A workload of one pass over [gpa, gpa + size), one access per page. */
static inline struct kmmu_workload kmmu_wl_seq(uint64_t gpa, uint64_t size, uint32_t write_pct,
					       uint64_t value)
{
	struct kmmu_workload wl = {
		.gpa = gpa,
		.size = size,
		.iterations = 1,
		.value = value,
		.pattern = KMMU_PATTERN_SEQUENTIAL,
		.write_percent = write_pct,
	};

	return wl;
}

/* One pass writing @value ^ gpa to @n words, @stride bytes apart, from @gpa. */
static inline struct kmmu_workload kmmu_wl_stride_writes(uint64_t gpa, uint64_t stride,
							 uint64_t n, uint64_t value)
{
	struct kmmu_workload wl = {
		.gpa = gpa,
		.size = (n - 1) * stride + sizeof(uint64_t),
		.stride = stride,
		.iterations = 1,
		.value = value,
		.pattern = KMMU_PATTERN_STRIDE,
		.write_percent = 100,
		.flags = KMMU_WL_XOR_GPA,
	};

	return wl;
}

#endif /* KMMU_TEST_UTIL_H */
