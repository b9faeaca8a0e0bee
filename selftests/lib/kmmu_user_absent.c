// SPDX-License-Identifier: GPL-2.0
/*
 * The user backend's entry points in a build without the userspace core
 * (the dev variant: make bench-drivers-dev, what a bench host builds).
 * kmmu_lib.c, built with KMMU_LIB_NO_USER, refuses the user backend
 * before any of these could be called; they are here for the linker, and
 * kmmu_user.h checks their prototypes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kmmu_user.h"

static void __attribute__((noreturn)) absent(const char *fn)
{
	fprintf(stderr, "kmmu: %s: this build has no user backend\n", fn);
	abort();
}

int kmmu_user_open(void)
{
	absent(__func__);
}

long kmmu_user_ioctl(int fd, unsigned long cmd, unsigned long arg)
{
	absent(__func__);
}

int kmmu_user_close(int fd)
{
	absent(__func__);
}

long kmmu_user_pread(int fd, void *buf, size_t size, long long off)
{
	absent(__func__);
}

int kmmu_user_mmap(int fd, unsigned long pgoff, size_t len, void **addr)
{
	absent(__func__);
}

int kmmu_user_munmap(void *addr)
{
	absent(__func__);
}

int kmmu_user_mem_register(void *addr, size_t len, enum kmmu_user_mem_kind kind,
			   bool writable)
{
	absent(__func__);
}

int kmmu_user_mem_unregister(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_migrate(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_compact(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_swap_out(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_discard(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_thp_split(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_thp_collapse(void *addr, size_t len)
{
	absent(__func__);
}

void kmmu_user_mem_prefault(void *addr, size_t len)
{
	absent(__func__);
}

int kmmu_user_mem_pfn(const void *addr, uint64_t *pfn)
{
	absent(__func__);
}

int kmmu_user_mem_state(void *addr, size_t len, struct kmmu_user_mem_state *st)
{
	absent(__func__);
}

void kmmu_user_mem_clear_marks(void *addr, size_t len)
{
	absent(__func__);
}

bool kmmu_user_age(void *addr, size_t len, bool clear, bool flush)
{
	absent(__func__);
}

long kmmu_user_check_frames(void)
{
	absent(__func__);
}

long kmmu_user_objects_alive(void)
{
	absent(__func__);
}

long kmmu_user_pt_pages_alive(void)
{
	absent(__func__);
}

long kmmu_user_warnings(void)
{
	absent(__func__);
}
