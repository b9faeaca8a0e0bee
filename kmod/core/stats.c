// SPDX-License-Identifier: GPL-2.0
/*
 * The binary statistics fd: a header, an id, one descriptor per statistic
 * and then the values, as KVM's kvm_stats_read() lays them out, so that a
 * reader of KVM's stats (kvm_stat, a selftest's read_stats_header()) reads
 * kmmu's the same way.  The layout never changes for an fd; only the
 * values do, and each read takes them afresh.
 */
#include "stats.h"

#define KMMU_STATS_NAME_SIZE	48

#define CUMULATIVE	(KMMU_STATS_TYPE_CUMULATIVE | KMMU_STATS_UNIT_NONE | KMMU_STATS_BASE_POW10)
#define INSTANT		(KMMU_STATS_TYPE_INSTANT | KMMU_STATS_UNIT_NONE | KMMU_STATS_BASE_POW10)
#define PEAK_NS		(KMMU_STATS_TYPE_PEAK | KMMU_STATS_UNIT_SECONDS | KMMU_STATS_BASE_POW10)

struct kmmu_stat_def {
	const char *name;
	u32 flags;
	s16 exponent;
};

/* The VM's: first the counters of enum kmmu_stat, in its order. */
static const struct kmmu_stat_def vm_stats[] = {
	[KMMU_STAT_PAGES_4K]		= { .name = "pages_4k", .flags = INSTANT },
	[KMMU_STAT_PAGES_2M]		= { .name = "pages_2m", .flags = INSTANT },
	[KMMU_STAT_PAGES_1G]		= { .name = "pages_1g", .flags = INSTANT },
	[KMMU_STAT_PT_PAGES]		= { .name = "pt_pages", .flags = INSTANT },
	[KMMU_STAT_FAULTS]		= { .name = "faults", .flags = CUMULATIVE },
	[KMMU_STAT_FAST_FAULTS]		= { .name = "fast_faults", .flags = CUMULATIVE },
	[KMMU_STAT_SPURIOUS_FAULTS]	= { .name = "spurious_faults", .flags = CUMULATIVE },
	[KMMU_STAT_FAULT_RETRIES]	= { .name = "fault_retries", .flags = CUMULATIVE },
	[KMMU_STAT_MMIO_FAULTS]		= { .name = "mmio_faults", .flags = CUMULATIVE },
	[KMMU_STAT_TLB_FLUSHES]		= { .name = "tlb_flushes", .flags = CUMULATIVE },
	[KMMU_STAT_ZAPPED_LEAFS]	= { .name = "zapped_leafs", .flags = CUMULATIVE },
	[KMMU_STAT_INVALIDATIONS]	= { .name = "invalidations", .flags = CUMULATIVE },
	[KMMU_STAT_DIRTY_PAGES]		= { .name = "dirty_pages", .flags = CUMULATIVE },
	[KMMU_STAT_SPLITS]		= { .name = "splits", .flags = CUMULATIVE },
	[KMMU_STAT_RECOVERIES]		= { .name = "recoveries", .flags = CUMULATIVE },
	[KMMU_STAT_COLLAPSIBLE_ZAPS]	= { .name = "collapsible_zaps", .flags = CUMULATIVE },
	[KMMU_STAT_AGING_PASSES]	= { .name = "aging_passes", .flags = CUMULATIVE },
	[KMMU_STAT_YOUNG]		= { .name = "young", .flags = CUMULATIVE },
	[KMMU_STAT_OLD]			= { .name = "old", .flags = CUMULATIVE },
	[KMMU_STAT_SHADOW_PAGES]	= { .name = "shadow_pages", .flags = INSTANT },
	[KMMU_STAT_SHADOW_LEAVES]	= { .name = "shadow_leaves", .flags = INSTANT },
	[KMMU_STAT_SHADOW_FAULTS]	= { .name = "shadow_faults", .flags = CUMULATIVE },
	[KMMU_STAT_SHADOW_TRACKED]	= { .name = "shadow_tracked", .flags = INSTANT },
	[KMMU_STAT_SHADOW_UNPROTECTS]	= { .name = "shadow_unprotects", .flags = CUMULATIVE },
	/* What is not a sharded counter. */
	[KMMU_NR_STATS]			= { .name = "max_write_hold_ns", .flags = PEAK_NS, .exponent = -9 },
	[KMMU_NR_STATS + 1]		= { .name = "memslot_generation", .flags = INSTANT },
};

static const struct kmmu_stat_def vcpu_stats[] = {
	[KMMU_VCPU_STAT_FAULTS]		= { .name = "faults", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_FAST_FAULTS]	= { .name = "fast_faults", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_SPURIOUS_FAULTS] = { .name = "spurious_faults", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_FAULT_RETRIES]	= { .name = "fault_retries", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_MMIO_FAULTS]	= { .name = "mmio_faults", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_TLB_FLUSHES]	= { .name = "tlb_flushes", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_ROOT_LOADS]	= { .name = "root_loads", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_EXITS]		= { .name = "exits", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_HW_NPF_EXITS]	= { .name = "hw_npf_exits", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_HW_INTR_EXITS]	= { .name = "hw_intr_exits", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_HW_VMMCALL_EXITS] = { .name = "hw_vmmcall_exits", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_SPP_EXITS]	= { .name = "spp_exits", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_SPP_MISSES]	= { .name = "spp_misses", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_NESTED_WALKS]	= { .name = "nested_walks", .flags = CUMULATIVE },
	[KMMU_VCPU_STAT_NESTED_FAULTS]	= { .name = "nested_faults", .flags = CUMULATIVE },
};

static_assert(ARRAY_SIZE(vm_stats) == KMMU_NR_STATS + 2);
static_assert(ARRAY_SIZE(vcpu_stats) == KMMU_VCPU_NR_STATS);

/**
 * kmmu_stats_fd_open() - what a new stats fd reads
 * @kmmu: the VM, which the fd holds a reference to
 * @vcpu: one of its vCPUs, or NULL for the VM's own statistics
 *
 * Return: the fd's data, or NULL when out of memory.
 */
struct kmmu_stats_fd *kmmu_stats_fd_open(struct kmmu *kmmu, struct kmmu_vcpu *vcpu)
{
	struct kmmu_stats_fd *sf = os_zalloc(sizeof(*sf));

	if (!sf)
		return NULL;
	kmmu_get(kmmu);
	sf->kmmu = kmmu;
	sf->vcpu = vcpu;
	return sf;
}

void kmmu_stats_fd_release(struct kmmu_stats_fd *sf)
{
	kmmu_put(sf->kmmu);
	os_free(sf);
}

static u64 kmmu_stats_value(struct kmmu_stats_fd *sf, unsigned int i)
{
	struct kmmu *kmmu = sf->kmmu;

	if (sf->vcpu)
		return READ_ONCE(sf->vcpu->stats[i]);
	if (i < KMMU_NR_STATS)
		return kmmu_stat_read(kmmu, i);
	if (i == KMMU_NR_STATS)
		return atomic64_read(&kmmu->max_write_hold_ns);
	return READ_ONCE(kmmu->slots_generation);
}

/* The whole file as it reads now: header, id, descriptors, values. */
static void *kmmu_stats_build(struct kmmu_stats_fd *sf, size_t *len)
{
	const struct kmmu_stat_def *defs = sf->vcpu ? vcpu_stats : vm_stats;
	u32 n = sf->vcpu ? ARRAY_SIZE(vcpu_stats) : ARRAY_SIZE(vm_stats);
	size_t desc_size = sizeof(struct kmmu_stats_desc) + KMMU_STATS_NAME_SIZE;
	struct kmmu_stats_header h = {
		.name_size = KMMU_STATS_NAME_SIZE,
		.num_desc = n,
		.id_offset = sizeof(h),
		.desc_offset = sizeof(h) + KMMU_STATS_NAME_SIZE,
		.data_offset = sizeof(h) + KMMU_STATS_NAME_SIZE + n * desc_size,
	};
	u8 *buf;
	u32 i;

	*len = h.data_offset + n * sizeof(u64);
	buf = os_zalloc(*len);
	if (!buf)
		return NULL;
	memcpy(buf, &h, sizeof(h));
	if (sf->vcpu)
		snprintf((char *)buf + h.id_offset, KMMU_STATS_NAME_SIZE, "kmmu-%d/vcpu-%d",
			 sf->kmmu->owner_pid, sf->vcpu->id);
	else
		snprintf((char *)buf + h.id_offset, KMMU_STATS_NAME_SIZE, "kmmu-%d",
			 sf->kmmu->owner_pid);
	for (i = 0; i < n; i++) {
		struct kmmu_stats_desc *d = (void *)(buf + h.desc_offset + i * desc_size);
		u64 v = kmmu_stats_value(sf, i);

		d->flags = defs[i].flags;
		d->exponent = defs[i].exponent;
		d->size = 1;
		d->offset = i * sizeof(u64);
		strscpy(d->name, defs[i].name, KMMU_STATS_NAME_SIZE);
		memcpy(buf + h.data_offset + d->offset, &v, sizeof(v));
	}
	return buf;
}

/**
 * kmmu_stats_read() - read() of a stats fd
 * @sf: the fd's data
 * @ubuf: the caller's buffer
 * @size: its size
 * @pos: in/out: the file position
 *
 * Return: the bytes read (0 at or past the end), -EFAULT, or -ENOMEM.
 */
long kmmu_stats_read(struct kmmu_stats_fd *sf, unsigned long ubuf, size_t size, u64 *pos)
{
	size_t len;
	long ret;
	u8 *buf;

	buf = kmmu_stats_build(sf, &len);
	if (!buf)
		return -ENOMEM;
	ret = 0;
	if (*pos < len) {
		size = min_t(u64, size, len - *pos);
		ret = os_copy_to_user(ubuf, buf + *pos, size) ? -EFAULT : (long)size;
		if (ret > 0)
			*pos += ret;
	}
	os_free(buf);
	return ret;
}
