/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ABI of kmmu_test.ko, the selftests' helper module: /dev/kmmu_test maps
 * the tail pages of a higher-order, non-compound allocation into a
 * VM_PFNMAP vma, and reports their page refcounts, so a test can prove that
 * kmmu never takes or drops references on such pages; and it reports what
 * the kernel knows of the caller's ordinary pages (flags, counts), so a
 * test can see what kmmu told the host about them.
 */
#ifndef _UAPI_LINUX_KMMU_TEST_H
#define _UAPI_LINUX_KMMU_TEST_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define KMMU_TEST_IO		0xB7
/* mmap() of /dev/kmmu_test maps at most this many bytes (tail pages). */
#define KMMU_TEST_MAX_MAP	(255 * 4096)

struct kmmu_test_refcounts {
	__u64 addr;		/* in: start of a /dev/kmmu_test mapping */
	__u64 refs;		/* in: user pointer to __s32[nr] */
	__u32 nr;		/* in: entries: [0] = the head page, [i] = the i-th mapped page */
	__u32 reserved;		/* in: must be zero */
};

#define KMMU_TEST_GET_REFCOUNTS	_IOW(KMMU_TEST_IO, 0x01, struct kmmu_test_refcounts)

/* One page of the caller's, as the kernel knows it. */
struct kmmu_test_page {
	__u64 pfn;		/* out: 0 when nothing is mapped there */
	__s32 refcount;		/* out: of its folio, less the helper's own */
	__s32 mapcount;		/* out: host mappings of it */
	__u32 flags;		/* out: KMMU_TEST_PAGE_* */
	__u32 reserved;
};

#define KMMU_TEST_PAGE_DIRTY		(1u << 0)	/* PG_dirty of the folio */
#define KMMU_TEST_PAGE_REFERENCED	(1u << 1)	/* PG_referenced: marked accessed */
#define KMMU_TEST_PAGE_ACTIVE		(1u << 2)
#define KMMU_TEST_PAGE_LARGE		(1u << 3)	/* in a THP or hugetlb folio */
#define KMMU_TEST_PAGE_MLOCKED		(1u << 4)
#define KMMU_TEST_PAGE_HOST_HUGE	(1u << 5)	/* the caller maps it with a 2M or 1G leaf */

/* KMMU_TEST_GET_PAGES flags */
#define KMMU_TEST_CLEAR_REFERENCED	(1u << 0)	/* clear PG_referenced once read */

struct kmmu_test_pages {
	__u64 addr;		/* in: page-aligned address of the caller's */
	__u64 pages;		/* in: user pointer to struct kmmu_test_page[nr] */
	__u32 nr;		/* in: pages, at most KMMU_TEST_MAX_PAGES */
	__u32 flags;		/* in: KMMU_TEST_CLEAR_REFERENCED */
};

#define KMMU_TEST_MAX_PAGES	65536
#define KMMU_TEST_GET_PAGES	_IOW(KMMU_TEST_IO, 0x02, struct kmmu_test_pages)

#endif /* _UAPI_LINUX_KMMU_TEST_H */
