// SPDX-License-Identifier: GPL-2.0
/*
 * An in-process stand-in for the kernel's file table: /dev/kmmu, VM and
 * vCPU "fds" that hold references like struct file does, so closing in any
 * order and closing while another thread is inside an ioctl behave as with
 * the module.
 */
#include "../core/api.h"
#include "../core/dirty_ring.h"
#include "../core/stats.h"
#include "internal.h"
#include "kmmu_user.h"

#define UF_MAX		4096
/* Numbers far from real fds, so mixing the two up fails loudly. */
#define UF_BASE		1000000

enum { UF_DEV = 1, UF_VM, UF_VCPU, UF_STATS };

struct ufile {
	int type;
	void *obj;
	int refs;		/* the table's, plus one per ioctl in flight */
};

static struct ufile *files[UF_MAX];
static pthread_mutex_t uf_lock = PTHREAD_MUTEX_INITIALIZER;

static int uf_install(int type, void *obj)
{
	struct ufile *f = os_zalloc(sizeof(*f));
	int i;

	if (!f)
		return -ENOMEM;
	f->type = type;
	f->obj = obj;
	f->refs = 1;

	pthread_mutex_lock(&uf_lock);
	for (i = 0; i < UF_MAX; i++) {
		if (!files[i]) {
			files[i] = f;
			pthread_mutex_unlock(&uf_lock);
			return UF_BASE + i;
		}
	}
	pthread_mutex_unlock(&uf_lock);
	os_free(f);
	return -EMFILE;
}

static struct ufile *uf_get(int fd)
{
	struct ufile *f = NULL;
	unsigned int i = fd - UF_BASE;

	pthread_mutex_lock(&uf_lock);
	if (fd >= UF_BASE && i < UF_MAX && files[i]) {
		f = files[i];
		f->refs++;
	}
	pthread_mutex_unlock(&uf_lock);
	return f;
}

static void uf_put(struct ufile *f)
{
	bool last;

	pthread_mutex_lock(&uf_lock);
	last = --f->refs == 0;
	pthread_mutex_unlock(&uf_lock);
	if (!last)
		return;

	if (f->type == UF_VM)
		kmmu_vm_release(f->obj);
	else if (f->type == UF_VCPU)
		kmmu_vcpu_release(f->obj);
	else if (f->type == UF_STATS)
		kmmu_stats_fd_release(f->obj);
	os_free(f);
}

int os_vm_fd_create(struct kmmu *kmmu)
{
	return uf_install(UF_VM, kmmu);
}

int os_vcpu_fd_create(struct kmmu_vcpu *vcpu)
{
	return uf_install(UF_VCPU, vcpu);
}

int os_stats_fd_create(struct kmmu_stats_fd *sf)
{
	return uf_install(UF_STATS, sf);
}

int kmmu_user_open(void)
{
	kmmu_user_thread_enter();
	return uf_install(UF_DEV, NULL);
}

long kmmu_user_ioctl(int fd, unsigned long cmd, unsigned long arg)
{
	struct ufile *f;
	long ret;

	kmmu_user_thread_enter();
	f = uf_get(fd);
	if (!f)
		return -EBADF;
	switch (f->type) {
	case UF_DEV:
		ret = kmmu_dev_ioctl(cmd, arg);
		break;
	case UF_VM:
		ret = kmmu_vm_ioctl(f->obj, cmd, arg);
		break;
	case UF_VCPU:
		ret = kmmu_vcpu_ioctl(f->obj, cmd, arg);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
	uf_put(f);
	return ret;
}

long kmmu_user_pread(int fd, void *buf, size_t size, long long off)
{
	struct ufile *f;
	u64 pos = off;
	long ret;

	kmmu_user_thread_enter();
	if (off < 0)
		return -EINVAL;
	f = uf_get(fd);
	if (!f)
		return -EBADF;
	ret = f->type == UF_STATS ? kmmu_stats_read(f->obj, (unsigned long)buf, size, &pos) :
				    -EINVAL;
	uf_put(f);
	return ret;
}

int kmmu_user_close(int fd)
{
	unsigned int i = fd - UF_BASE;
	struct ufile *f = NULL;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&uf_lock);
	if (fd >= UF_BASE && i < UF_MAX) {
		f = files[i];
		files[i] = NULL;
	}
	pthread_mutex_unlock(&uf_lock);
	if (!f)
		return -EBADF;
	uf_put(f);
	return 0;
}

/*
 * mmap of a vCPU fd, which maps its dirty ring: the "mapping" is the ring
 * itself, and holds the file as a vma does until kmmu_user_munmap().
 */
struct umap {
	void *addr;
	struct ufile *f;
};

static struct umap maps[UF_MAX];

int kmmu_user_mmap(int fd, unsigned long pgoff, size_t len, void **addr)
{
	struct ufile *f;
	void *ring;
	int i;

	kmmu_user_thread_enter();
	f = uf_get(fd);
	if (!f)
		return -EBADF;
	if (f->type != UF_VCPU) {
		uf_put(f);
		return -ENODEV;
	}
	ring = kmmu_dirty_ring_mmap(f->obj, pgoff, len);
	if (!ring) {
		uf_put(f);
		return -EINVAL;
	}
	pthread_mutex_lock(&uf_lock);
	for (i = 0; i < UF_MAX && maps[i].f; i++)
		;
	if (i < UF_MAX) {
		maps[i].addr = ring;
		maps[i].f = f;
	}
	pthread_mutex_unlock(&uf_lock);
	if (i == UF_MAX) {
		uf_put(f);
		return -ENOMEM;
	}
	*addr = ring;
	return 0;
}

int kmmu_user_munmap(void *addr)
{
	struct ufile *f = NULL;
	int i;

	kmmu_user_thread_enter();
	pthread_mutex_lock(&uf_lock);
	for (i = 0; i < UF_MAX; i++) {
		if (maps[i].f && maps[i].addr == addr) {
			f = maps[i].f;
			maps[i].f = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&uf_lock);
	if (!f)
		return -EINVAL;
	uf_put(f);
	return 0;
}
