/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ABI of kmmu_test.ko, the selftests' helper module: /dev/kmmu_test maps
 * the tail pages of a higher-order, non-compound allocation into a
 * VM_PFNMAP vma, and reports their page refcounts, so a test can prove that
 * kmmu never takes or drops references on such pages.
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

#endif /* _UAPI_LINUX_KMMU_TEST_H */
