// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl dispatch for /dev/kmmu, VM and vCPU fds, shared by both hosts.
 *
 * Every argument is copied in and checked here, before any state is
 * touched: a bad argument gets a clear errno and changes nothing.  Only
 * checks that need the VM's current state (overlapping slots, an id in use)
 * are left to the code that owns that state.
 */
#include "api.h"
#include "dirty_ring.h"
#include "guest_walk.h"
#include "memslot.h"
#include "shadow_mmu.h"
#include "spp.h"
#include "stats.h"
#include "tdp_mmu.h"
#include "vcpu.h"

#define KMMU_GPA_LIMIT		(1ULL << (KMMU_MAX_LEVEL * KMMU_LEVEL_BITS + KMMU_PAGE_SHIFT))

/* [gpa, gpa + size) lies inside the guest physical space, without wrapping. */
static bool gpa_range_ok(u64 gpa, u64 size)
{
	return gpa < KMMU_GPA_LIMIT && size <= KMMU_GPA_LIMIT - gpa;
}

static bool page_aligned(u64 x)
{
	return IS_ALIGNED(x, KMMU_PAGE_SIZE);
}

/* ---- /dev/kmmu ---- */

static long kmmu_check_extension(unsigned long cap)
{
	switch (cap) {
	case KMMU_CAP_SPTE_FORMATS:
		return BIT(KMMU_SPTE_FORMAT_EPT) | BIT(KMMU_SPTE_FORMAT_NPT);
	case KMMU_CAP_MAX_LEVEL:
		return KMMU_LEVEL_1G;
	case KMMU_CAP_NR_MEMSLOTS:
		return KMMU_USER_MEM_SLOTS;
	case KMMU_CAP_NR_VCPUS:
		return KMMU_MAX_VCPUS;
	case KMMU_CAP_ADDRESS_SPACES:
		return KMMU_ADDRESS_SPACE_NUM;
	case KMMU_CAP_AD_DISABLED:
	case KMMU_CAP_NONPRESENT_VE:
	case KMMU_CAP_READONLY_MEM:
	case KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE:
	case KMMU_CAP_LOCKLESS_AGING:
	case KMMU_CAP_SPP:
	case KMMU_CAP_NESTED:
		return 1;
	case KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT:
		return KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KMMU_DIRTY_LOG_INITIALLY_SET;
	case KMMU_CAP_DIRTY_LOG_MODE:
		return BIT(KMMU_DIRTY_LOG_MODE_WRPROT) | BIT(KMMU_DIRTY_LOG_MODE_DBIT);
	case KMMU_CAP_DIRTY_LOG_RING:
		return KMMU_DIRTY_RING_MAX_ENTRIES * sizeof(struct kmmu_dirty_gfn);
	case KMMU_CAP_HW_VCPU:
		return !os_hw_supported();
	default:
		return 0;
	}
}

static int kmmu_check_vm_config(const struct kmmu_vm_config *cfg, u32 host_format)
{
	u32 format = cfg->spte_format ? cfg->spte_format : host_format;

	if (cfg->reserved0 || !mem_is_zero(cfg->reserved, sizeof(cfg->reserved)))
		return -EINVAL;
	if (cfg->spte_format > KMMU_SPTE_FORMAT_NPT)
		return -EINVAL;
	if (cfg->flags & ~KMMU_VM_VALID_FLAGS)
		return -EINVAL;
	if (cfg->max_level > KMMU_LEVEL_1G)
		return -EINVAL;
	/* A/D-disabled mode and #VE exist only in EPT. */
	if (format != KMMU_SPTE_FORMAT_EPT &&
	    (cfg->flags & (KMMU_VM_AD_DISABLED | KMMU_VM_NONPRESENT_SUPPRESS_VE)))
		return -EINVAL;
	return 0;
}

static long kmmu_dev_create_vm(unsigned long arg)
{
	u32 host_format = os_host_spte_format();
	struct kmmu_vm_config cfg;
	struct kmmu *kmmu;
	int ret, fd;

	if (os_copy_from_user(&cfg, arg, sizeof(cfg)))
		return -EFAULT;
	ret = kmmu_check_vm_config(&cfg, host_format);
	if (ret)
		return ret;

	cfg.flags |= os_host_vm_flags(cfg.spte_format ? cfg.spte_format : host_format);
	kmmu = kmmu_create_vm(&cfg, host_format, &ret);
	if (!kmmu)
		return ret;
	fd = os_vm_fd_create(kmmu);
	if (fd < 0)
		kmmu_put(kmmu);
	return fd;
}

long kmmu_dev_ioctl(unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case KMMU_GET_API_VERSION:
		return arg ? -EINVAL : KMMU_API_VERSION;
	case KMMU_CHECK_EXTENSION:
		return kmmu_check_extension(arg);
	case KMMU_CREATE_VM:
		return kmmu_dev_create_vm(arg);
	default:
		return -ENOTTY;
	}
}

/* ---- VM fd ---- */

static bool slot_id_ok(u32 slot);

static int kmmu_check_memory_region(const struct kmmu_userspace_memory_region *mem)
{
	if (!slot_id_ok(mem->slot))
		return -EINVAL;
	if (mem->flags & ~KMMU_MEM_VALID_FLAGS)
		return -EINVAL;
	if (!page_aligned(mem->memory_size) || !page_aligned(mem->guest_phys_addr) ||
	    !page_aligned(mem->userspace_addr))
		return -EINVAL;
	if (!gpa_range_ok(mem->guest_phys_addr, mem->memory_size))
		return -EINVAL;
	/* As KVM_MEM_MAX_NR_PAGES: bitmaps and disallow counts stay allocatable. */
	if ((mem->memory_size >> KMMU_PAGE_SHIFT) > KMMU_MEM_MAX_NR_PAGES)
		return -EINVAL;
	if (mem->memory_size && !os_user_range_ok(mem->userspace_addr, mem->memory_size))
		return -EINVAL;
	return 0;
}

static long kmmu_vm_set_memory_region(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_userspace_memory_region mem;
	int ret;

	if (os_copy_from_user(&mem, arg, sizeof(mem)))
		return -EFAULT;
	ret = kmmu_check_memory_region(&mem);
	if (ret)
		return ret;
	return kmmu_set_memory_region(kmmu, &mem);
}

static long kmmu_vm_create_vcpu(struct kmmu *kmmu, unsigned long id)
{
	struct kmmu_vcpu *vcpu;
	int ret, fd;

	if (id >= KMMU_MAX_VCPUS)
		return -EINVAL;
	vcpu = kmmu_create_vcpu(kmmu, id, &ret);
	if (!vcpu)
		return ret;
	fd = os_vcpu_fd_create(vcpu);
	if (fd < 0)
		kmmu_unpublish_vcpu(vcpu);
	return fd;
}

static long kmmu_vm_get_stats(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_vm_stats st;

	memset(&st, 0, sizeof(st));
	st.pages_4k = kmmu_stat_read(kmmu, KMMU_STAT_PAGES_4K);
	st.pages_2m = kmmu_stat_read(kmmu, KMMU_STAT_PAGES_2M);
	st.pages_1g = kmmu_stat_read(kmmu, KMMU_STAT_PAGES_1G);
	st.pt_pages = kmmu_stat_read(kmmu, KMMU_STAT_PT_PAGES);
	st.faults = kmmu_stat_read(kmmu, KMMU_STAT_FAULTS);
	st.fast_faults = kmmu_stat_read(kmmu, KMMU_STAT_FAST_FAULTS);
	st.spurious_faults = kmmu_stat_read(kmmu, KMMU_STAT_SPURIOUS_FAULTS);
	st.fault_retries = kmmu_stat_read(kmmu, KMMU_STAT_FAULT_RETRIES);
	st.mmio_faults = kmmu_stat_read(kmmu, KMMU_STAT_MMIO_FAULTS);
	st.tlb_flushes = kmmu_stat_read(kmmu, KMMU_STAT_TLB_FLUSHES);
	st.zapped_leafs = kmmu_stat_read(kmmu, KMMU_STAT_ZAPPED_LEAFS);
	st.invalidations = kmmu_stat_read(kmmu, KMMU_STAT_INVALIDATIONS);
	st.memslot_generation = READ_ONCE(kmmu->slots_generation);
	st.dirty_pages = kmmu_stat_read(kmmu, KMMU_STAT_DIRTY_PAGES);
	st.splits = kmmu_stat_read(kmmu, KMMU_STAT_SPLITS);
	st.recoveries = kmmu_stat_read(kmmu, KMMU_STAT_RECOVERIES);
	st.collapsible_zaps = kmmu_stat_read(kmmu, KMMU_STAT_COLLAPSIBLE_ZAPS);
	st.aging_passes = kmmu_stat_read(kmmu, KMMU_STAT_AGING_PASSES);
	st.young = kmmu_stat_read(kmmu, KMMU_STAT_YOUNG);
	st.old = kmmu_stat_read(kmmu, KMMU_STAT_OLD);
	st.max_write_hold_ns = atomic64_read(&kmmu->max_write_hold_ns);
	st.shadow_pages = kmmu_stat_read(kmmu, KMMU_STAT_SHADOW_PAGES);
	st.shadow_leaves = kmmu_stat_read(kmmu, KMMU_STAT_SHADOW_LEAVES);
	st.shadow_faults = kmmu_stat_read(kmmu, KMMU_STAT_SHADOW_FAULTS);
	st.shadow_tracked = kmmu_stat_read(kmmu, KMMU_STAT_SHADOW_TRACKED);
	st.shadow_unprotects = kmmu_stat_read(kmmu, KMMU_STAT_SHADOW_UNPROTECTS);
	return os_copy_to_user(arg, &st, sizeof(st));
}

/* KMMU_GET_STATS_FD, on a VM fd (@vcpu NULL) or a vCPU fd. */
static long kmmu_get_stats_fd(struct kmmu *kmmu, struct kmmu_vcpu *vcpu, unsigned long arg)
{
	struct kmmu_stats_fd *sf;
	int fd;

	if (arg)
		return -EINVAL;
	sf = kmmu_stats_fd_open(kmmu, vcpu);
	if (!sf)
		return -ENOMEM;
	fd = os_stats_fd_create(sf);
	if (fd < 0)
		kmmu_stats_fd_release(sf);
	return fd;
}

static long kmmu_vm_get_spte(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_spte_query q;

	if (os_copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.as_id >= KMMU_ADDRESS_SPACE_NUM || q.gpa >= KMMU_GPA_LIMIT ||
	    !mem_is_zero(q.reserved, sizeof(q.reserved)))
		return -EINVAL;

	memset(q.sptes, 0, sizeof(q.sptes));
	q.level = kmmu_tdp_mmu_get_walk(kmmu, q.as_id, q.gpa, q.sptes);
	return os_copy_to_user(arg, &q, sizeof(q));
}

static int kmmu_check_zap(const struct kmmu_zap *z)
{
	if (z->flags & ~KMMU_ZAP_VALID_FLAGS || !mem_is_zero(z->reserved, sizeof(z->reserved)))
		return -EINVAL;
	if (z->as_id >= KMMU_ADDRESS_SPACE_NUM)
		return -EINVAL;
	if (z->flags & KMMU_ZAP_ALL)
		return z->gpa || z->size ? -EINVAL : 0;
	if (!z->size || !page_aligned(z->gpa) || !page_aligned(z->size) ||
	    !gpa_range_ok(z->gpa, z->size))
		return -EINVAL;
	return 0;
}

static long kmmu_vm_zap(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_zap z;
	bool flush;
	int ret;

	if (os_copy_from_user(&z, arg, sizeof(z)))
		return -EFAULT;
	ret = kmmu_check_zap(&z);
	if (ret)
		return ret;

	if (z.flags & KMMU_ZAP_ALL) {
		kmmu_zap_all(kmmu);
		return 0;
	}
	kmmu_mmu_write_lock(kmmu);
	flush = kmmu_tdp_mmu_zap_leafs(kmmu, z.as_id, z.gpa >> KMMU_PAGE_SHIFT,
				       (z.gpa + z.size) >> KMMU_PAGE_SHIFT, true, false);
	/* The shadow leaves that map the range go too, as in an invalidation. */
	flush |= kmmu_shadow_zap_range(kmmu, z.as_id, z.gpa >> KMMU_PAGE_SHIFT,
				       (z.gpa + z.size) >> KMMU_PAGE_SHIFT);
	if (flush)
		kmmu_flush_remote_tlbs(kmmu);
	kmmu_mmu_write_unlock(kmmu);
	return 0;
}

static bool slot_id_ok(u32 slot)
{
	return (slot >> 16) < KMMU_ADDRESS_SPACE_NUM && (slot & 0xffff) < KMMU_USER_MEM_SLOTS;
}

static long kmmu_vm_get_dirty_log(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_dirty_log log;

	if (os_copy_from_user(&log, arg, sizeof(log)))
		return -EFAULT;
	if (!slot_id_ok(log.slot) || log.padding)
		return -EINVAL;
	return kmmu_get_dirty_log(kmmu, &log);
}

static long kmmu_vm_clear_dirty_log(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_clear_dirty_log log;

	if (os_copy_from_user(&log, arg, sizeof(log)))
		return -EFAULT;
	if (!slot_id_ok(log.slot) || (log.first_page & 63))
		return -EINVAL;
	return kmmu_clear_dirty_log(kmmu, &log);
}

static long kmmu_vm_enable_cap(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_enable_cap cap;

	if (os_copy_from_user(&cap, arg, sizeof(cap)))
		return -EFAULT;
	if (cap.flags || !mem_is_zero(cap.reserved, sizeof(cap.reserved)))
		return -EINVAL;
	return kmmu_enable_cap(kmmu, &cap);
}

static long kmmu_vm_age(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_age a;

	if (os_copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~KMMU_AGE_VALID_FLAGS) || a.padding ||
	    !mem_is_zero(a.reserved, sizeof(a.reserved)) ||
	    a.as_id >= KMMU_ADDRESS_SPACE_NUM || !a.size || !page_aligned(a.gpa) ||
	    !page_aligned(a.size) || !gpa_range_ok(a.gpa, a.size))
		return -EINVAL;

	/* Where the counts go must take them: fail before aging anything. */
	if (os_copy_to_user(arg, &a, sizeof(a)))
		return -EFAULT;
	a.result = kmmu_age_gfn_range_ioctl(kmmu, a.as_id, a.gpa >> KMMU_PAGE_SHIFT,
					    (a.gpa + a.size) >> KMMU_PAGE_SHIFT, a.flags,
					    &a.young, &a.old);
	return os_copy_to_user(arg, &a, sizeof(a));
}

/*
 * KMMU_SUBPAGES_GET_ACCESS and _SET_ACCESS: the header, then the maps (in
 * for SET, out for GET), every field checked before the VM is looked at.
 */
static long kmmu_vm_subpages(struct kmmu *kmmu, unsigned long arg, bool set)
{
	struct kmmu_subpage_access req;
	unsigned long uaddr = arg + sizeof(req);
	size_t bytes;
	u32 *map;
	int ret;

	if (kmmu->fmt.format != KMMU_SPTE_FORMAT_EPT)
		return -EOPNOTSUPP;
	if (!READ_ONCE(kmmu->spp_enabled))
		return -ENXIO;
	if (os_copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.flags || req.reserved0 || !mem_is_zero(req.reserved, sizeof(req.reserved)) ||
	    !req.npages || req.as_id >= KMMU_ADDRESS_SPACE_NUM ||
	    !gpa_range_ok(req.gfn_base << KMMU_PAGE_SHIFT, (u64)req.npages << KMMU_PAGE_SHIFT) ||
	    req.gfn_base >= KMMU_GPA_LIMIT >> KMMU_PAGE_SHIFT)
		return -EINVAL;
	if (req.npages > KMMU_SUBPAGES_MAX_PAGES)
		return -E2BIG;

	bytes = (size_t)req.npages * sizeof(*map);
	map = os_zalloc(bytes);
	if (!map)
		return -ENOMEM;
	if (set) {
		ret = os_copy_from_user(map, uaddr, bytes) ? -EFAULT : 0;
		if (!ret)
			ret = kmmu_spp_set_access(kmmu, &req, map);
	} else {
		ret = kmmu_spp_get_access(kmmu, &req, map);
		if (!ret && os_copy_to_user(uaddr, map, bytes))
			ret = -EFAULT;
	}
	os_free(map);
	return ret;
}

/*
 * KMMU_CHECK_EXTENSION on a VM fd, as KVM answers it there: what this VM
 * can do, where that depends on its configuration.
 */
static long kmmu_vm_check_extension(struct kmmu *kmmu, unsigned long cap)
{
	switch (cap) {
	case KMMU_CAP_SPTE_FORMATS:
		return BIT(kmmu->fmt.format);
	case KMMU_CAP_MAX_LEVEL:
		return kmmu->max_level;
	case KMMU_CAP_AD_DISABLED:
		return !kmmu->fmt.ad_enabled;
	case KMMU_CAP_NONPRESENT_VE:
		return kmmu->fmt.nonpresent != 0;
	case KMMU_CAP_DIRTY_LOG_MODE:
		return BIT(KMMU_DIRTY_LOG_MODE_WRPROT) |
		       (kmmu->fmt.ad_enabled ? BIT(KMMU_DIRTY_LOG_MODE_DBIT) : 0);
	case KMMU_CAP_HW_VCPU:
		return kmmu->hw_vcpu || kmmu_hw_vcpu_possible(kmmu);
	case KMMU_CAP_SPP:
		return kmmu->fmt.format == KMMU_SPTE_FORMAT_EPT;
	case KMMU_CAP_NESTED:
		return !kmmu->hw_vcpu;
	default:
		return kmmu_check_extension(cap);
	}
}

/*
 * Is @root an EPTP or nCR3 that L1 could load?  See KMMU_WL_NESTED in the
 * uapi header.
 */
static bool nested_root_ok(const struct kmmu *kmmu, u64 root)
{
	u64 mt = root & 7;

	if (root & ~GENMASK_ULL(KMMU_L1_PHYS_BITS - 1, 0))
		return false;
	if (kmmu->fmt.format == KMMU_SPTE_FORMAT_NPT)
		return true;
	return (mt == KMMU_EPTP_MT_UC || mt == KMMU_EPTP_MT_WB) &&
	       (root & (7 << 3)) == KMMU_EPTP_PWL_4 && !(root & GENMASK_ULL(11, 7));
}

static long kmmu_vm_invalidate_nested(struct kmmu *kmmu, unsigned long arg)
{
	struct kmmu_nested_invalidate inv;

	if (os_copy_from_user(&inv, arg, sizeof(inv)))
		return -EFAULT;
	if (inv.flags || !mem_is_zero(inv.reserved, sizeof(inv.reserved)))
		return -EINVAL;
	if (inv.type == KMMU_INV_SINGLE_CONTEXT) {
		if (!nested_root_ok(kmmu, inv.root))
			return -EINVAL;
	} else if (inv.type != KMMU_INV_ALL_CONTEXTS || inv.root) {
		return -EINVAL;
	}
	if (kmmu->hw_vcpu)
		return -EOPNOTSUPP;
	/*
	 * What vCPUs cache of L1's tables is in the shadow pages and their
	 * TLBs.  Nothing finds the shadow pages of one root yet (roots share
	 * lower tables), so both types drop them all, as INVEPT may
	 * invalidate more than it was asked to.
	 */
	if (!kmmu_mutant(NESTED_INVALIDATE_NOOP)) {
		kmmu_shadow_zap_all(kmmu);
		kmmu_flush_remote_tlbs(kmmu);
	}
	return 0;
}

long kmmu_vm_ioctl(struct kmmu *kmmu, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case KMMU_CHECK_EXTENSION:
		return kmmu_vm_check_extension(kmmu, arg);
	case KMMU_SET_USER_MEMORY_REGION:
		return kmmu_vm_set_memory_region(kmmu, arg);
	case KMMU_CREATE_VCPU:
		return kmmu_vm_create_vcpu(kmmu, arg);
	case KMMU_GET_STATS:
		return kmmu_vm_get_stats(kmmu, arg);
	case KMMU_GET_STATS_FD:
		return kmmu_get_stats_fd(kmmu, NULL, arg);
	case KMMU_GET_SPTE:
		return kmmu_vm_get_spte(kmmu, arg);
	case KMMU_ZAP:
		return kmmu_vm_zap(kmmu, arg);
	case KMMU_AGE:
		return kmmu_vm_age(kmmu, arg);
	case KMMU_GET_DIRTY_LOG:
		return kmmu_vm_get_dirty_log(kmmu, arg);
	case KMMU_CLEAR_DIRTY_LOG:
		return kmmu_vm_clear_dirty_log(kmmu, arg);
	case KMMU_ENABLE_CAP:
		return kmmu_vm_enable_cap(kmmu, arg);
	case KMMU_SUBPAGES_GET_ACCESS:
		return kmmu_vm_subpages(kmmu, arg, false);
	case KMMU_SUBPAGES_SET_ACCESS:
		return kmmu_vm_subpages(kmmu, arg, true);
	case KMMU_RESET_DIRTY_RINGS:
		if (arg)
			return -EINVAL;
		return kmmu_reset_dirty_rings(kmmu);
	case KMMU_INVALIDATE_NESTED:
		return kmmu_vm_invalidate_nested(kmmu, arg);
	default:
		return -ENOTTY;
	}
}

void kmmu_vm_release(struct kmmu *kmmu)
{
	kmmu_put(kmmu);
}

/* ---- vCPU fd ---- */

static int kmmu_check_workload(const struct kmmu *kmmu, const struct kmmu_workload *wl)
{
	u64 step, per_pass;

	if (wl->reserved0 || !mem_is_zero(wl->reserved, sizeof(wl->reserved)))
		return -EINVAL;
	/* L2 gpas go through L1's 4-level tables: gpa_range_ok() below covers it. */
	BUILD_BUG_ON(KMMU_GPA_LIMIT > KMMU_L1_GPA_LIMIT);
	if (wl->flags & KMMU_WL_NESTED) {
		if (!nested_root_ok(kmmu, wl->nested_root))
			return -EINVAL;
	} else if (wl->nested_root) {
		return -EINVAL;
	}
	if (wl->pattern > KMMU_PATTERN_STRIDE || wl->write_percent > 100 ||
	    (wl->flags & ~KMMU_WL_VALID_FLAGS))
		return -EINVAL;
	if (!IS_ALIGNED(wl->gpa, sizeof(u64)) || wl->size < sizeof(u64) ||
	    !gpa_range_ok(wl->gpa, wl->size) || !wl->iterations)
		return -EINVAL;
	if (wl->pattern == KMMU_PATTERN_STRIDE) {
		if (!wl->stride || !IS_ALIGNED(wl->stride, sizeof(u64)))
			return -EINVAL;
	} else if (wl->stride) {
		return -EINVAL;
	}

	step = wl->pattern == KMMU_PATTERN_STRIDE ? wl->stride : KMMU_PAGE_SIZE;
	per_pass = (wl->size - sizeof(u64)) / step + 1;
	if (wl->iterations > ~0ULL / per_pass)
		return -E2BIG;
	return 0;
}

static long kmmu_vcpu_set_workload_ioctl(struct kmmu_vcpu *vcpu, unsigned long arg)
{
	struct kmmu_workload wl;
	int ret;

	if (os_copy_from_user(&wl, arg, sizeof(wl)))
		return -EFAULT;
	ret = kmmu_check_workload(vcpu->kmmu, &wl);
	if (ret)
		return ret;
	/* The hardware vCPU's guest code runs unnested. */
	if (vcpu->hw && (wl.flags & KMMU_WL_NESTED))
		return -EOPNOTSUPP;
	/*
	 * A hardware vCPU's guest addresses below 2^MAXPHYADDR only, and its
	 * workload must not overwrite the guest's own code and tables.
	 */
	if (vcpu->hw && (wl.gpa + wl.size > vcpu->kmmu->hw_gpa_limit ||
			 (wl.gpa < KMMU_HW_SLOT_GPA + KMMU_HW_SLOT_SIZE &&
			  KMMU_HW_SLOT_GPA < wl.gpa + wl.size)))
		return -EINVAL;
	if (!kmmu_vcpu_get_exclusive(vcpu))
		return -EBUSY;
	kmmu_set_workload(vcpu, &wl);
	kmmu_vcpu_put_exclusive(vcpu);
	return 0;
}

static long kmmu_vcpu_run_ioctl(struct kmmu_vcpu *vcpu, unsigned long arg)
{
	struct kmmu_run run;
	int ret;

	if (os_copy_from_user(&run, arg, sizeof(run)))
		return -EFAULT;
	if (!mem_is_zero(run.reserved_in, sizeof(run.reserved_in)))
		return -EINVAL;
	ret = kmmu_run_vcpu(vcpu, &run);
	if (ret && ret != -EINTR && ret != -ENOMEM)
		return ret;
	/* What RUN did before it stopped is userspace's to see, as in kvm_run. */
	if (os_copy_to_user(arg, &run, sizeof(run)))
		return -EFAULT;
	return ret;
}

long kmmu_vcpu_ioctl(struct kmmu_vcpu *vcpu, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case KMMU_SET_WORKLOAD:
		return kmmu_vcpu_set_workload_ioctl(vcpu, arg);
	case KMMU_RUN:
		return kmmu_vcpu_run_ioctl(vcpu, arg);
	case KMMU_KICK:
		if (arg)
			return -EINVAL;
		kmmu_kick_vcpu(vcpu);
		return 0;
	case KMMU_GET_STATS_FD:
		return kmmu_get_stats_fd(vcpu->kmmu, vcpu, arg);
	default:
		return -ENOTTY;
	}
}

void kmmu_vcpu_release(struct kmmu_vcpu *vcpu)
{
	kmmu_put(vcpu->kmmu);
}
