// SPDX-License-Identifier: GPL-2.0
/*
 * The walk of L1's own EPT or NPT tables for an L2 address: entries read
 * from L1 memory, the checks L1's CPU makes (present, reserved bits, EPT
 * misconfigurations, permissions accumulated over the levels), and the A/D
 * bits it sets, so that the shadow MMU maps only what L1's tables allow
 * and L1 sees its tables used as its hardware would use them.
 *
 * As KVM's walker does, A and D are set only by a walk that succeeds, and
 * with a compare-and-exchange on L1 memory: an entry that changed meanwhile
 * (L1 wrote it) makes the walk start over with what L1 wrote.
 */
#include "guest_walk.h"
#include "dirty_ring.h"
#include "memslot.h"

enum gw_entry {
	GW_ENTRY_NOT_PRESENT,
	GW_ENTRY_BAD,
	GW_ENTRY_TABLE,
	GW_ENTRY_LEAF,
};

/* Address bits 51:48 are beyond L1's MAXPHYADDR: reserved in every entry. */
#define L1_RSVD_HIGH		GENMASK_ULL(51, KMMU_L1_PHYS_BITS)
#define L1_ADDR_MASK		GENMASK_ULL(KMMU_L1_PHYS_BITS - 1, 12)
/* EPT: bits 6:3 of a non-leaf entry are reserved, and bit 7 of a PML4E. */
#define EPT_TABLE_RSVD		GENMASK_ULL(6, 3)

/* The offset bits of a large leaf's address, which must be zero. */
static u64 large_leaf_rsvd(int level, int first_bit)
{
	return GENMASK_ULL(KMMU_PAGE_SHIFT + (level - 1) * KMMU_LEVEL_BITS - 1, first_bit);
}

static enum gw_entry ept_kind(u64 e, int level)
{
	u64 mt = (e & EPT_MT_MASK) >> EPT_MT_SHIFT;
	bool leaf = level == KMMU_LEVEL_4K || (e & EPT_LARGE);

	if (!(e & EPT_RWX))
		return GW_ENTRY_NOT_PRESENT;
	/* Write without read; execute-only is supported, as KVM reports. */
	if ((e & EPT_W) && !(e & EPT_R))
		return GW_ENTRY_BAD;
	if ((e & L1_RSVD_HIGH) && !kmmu_mutant(GW_HIGH_BITS_IGNORED))
		return GW_ENTRY_BAD;
	if (level == KMMU_MAX_LEVEL && (e & EPT_LARGE))
		return GW_ENTRY_BAD;
	if (!leaf)
		return (e & EPT_TABLE_RSVD) ? GW_ENTRY_BAD : GW_ENTRY_TABLE;
	/* Memory types 2, 3 and 7 are reserved. */
	if (mt == 2 || mt == 3 || mt == 7)
		return GW_ENTRY_BAD;
	if (level > KMMU_LEVEL_4K && (e & large_leaf_rsvd(level, KMMU_PAGE_SHIFT)))
		return GW_ENTRY_BAD;
	return GW_ENTRY_LEAF;
}

static enum gw_entry npt_kind(u64 e, int level)
{
	bool leaf = level == KMMU_LEVEL_4K || (e & NPT_PS);

	if (!(e & NPT_P))
		return GW_ENTRY_NOT_PRESENT;
	if ((e & L1_RSVD_HIGH) && !kmmu_mutant(GW_HIGH_BITS_IGNORED))
		return GW_ENTRY_BAD;
	if (level == KMMU_MAX_LEVEL && (e & NPT_PS))
		return GW_ENTRY_BAD;
	if (!leaf)
		return GW_ENTRY_TABLE;
	/* Bit 12 of a large leaf is PAT; the offset bits above it are reserved. */
	if (level > KMMU_LEVEL_4K && (e & large_leaf_rsvd(level, KMMU_PAGE_SHIFT + 1)))
		return GW_ENTRY_BAD;
	return GW_ENTRY_LEAF;
}

/* What one entry allows, as KMMU_ACC_*: nested walks are user accesses. */
unsigned int kmmu_gw_entry_access(u32 format, u64 e)
{
	unsigned int acc = 0;

	if (format == KMMU_SPTE_FORMAT_EPT) {
		acc |= (e & EPT_R) ? KMMU_ACC_READ : 0;
		acc |= (e & EPT_W) ? KMMU_ACC_WRITE : 0;
		acc |= (e & EPT_X) ? KMMU_ACC_EXEC : 0;
		return acc;
	}
	if (!(e & NPT_US))
		return 0;
	acc = KMMU_ACC_READ;
	acc |= (e & NPT_RW) ? KMMU_ACC_WRITE : 0;
	acc |= (e & NPT_NX) ? 0 : KMMU_ACC_EXEC;
	return acc;
}

static bool access_allowed(unsigned int granted, unsigned int access)
{
	/* A write needs read too: EPT has no write-only entry that is not bad. */
	if (access & KMMU_ACC_WRITE)
		access |= KMMU_ACC_READ;
	return (granted & access) == access;
}

/*
 * Set A in every entry of the walk and D in the leaf for a write.
 * Return: 0, -EAGAIN when an entry changed since it was read (walk
 * again), -EFAULT when L1's memory went away.
 */
static int gw_set_ad(const struct kmmu_gw_mem *mem, struct kmmu_guest_walk *gw)
{
	bool ept = gw->format == KMMU_SPTE_FORMAT_EPT;
	u64 accessed = ept ? EPT_A : NPT_A, dirty = ept ? EPT_D : NPT_D;
	int level, ret;
	u64 new;

	for (level = KMMU_MAX_LEVEL; level >= gw->level; level--) {
		new = gw->pte[level] | accessed;
		if (level == gw->level && (gw->access & KMMU_ACC_WRITE))
			new |= dirty;
		if (new == gw->pte[level])
			continue;
		ret = mem->update(mem->ctx, gw->pte_gpa[level], gw->pte[level], new);
		if (ret == -EAGAIN && kmmu_mutant(GW_KEEPS_STALE_ENTRY))
			continue;
		if (ret < 0)
			return ret;
		if (!ret)
			gw->pte[level] = new;
	}
	return 0;
}

/* One pass from the root; 0 or the fault, -EAGAIN to walk again. */
static int gw_walk_once(const struct kmmu_gw_mem *mem, struct kmmu_guest_walk *gw)
{
	bool ept = gw->format == KMMU_SPTE_FORMAT_EPT;
	gfn_t l2_gfn = gw->l2_gpa >> KMMU_PAGE_SHIFT;
	gpa_t table = gw->root;
	enum gw_entry kind;
	int ret;
	u64 e;

	gw->pte_access = KMMU_ACC_ALL;
	for (gw->level = KMMU_MAX_LEVEL; ; gw->level--) {
		gw->table_gfn[gw->level] = table >> KMMU_PAGE_SHIFT;
		gw->pte_gpa[gw->level] = table + kmmu_spte_index(l2_gfn, gw->level) * sizeof(u64);
		if (mem->read(mem->ctx, gw->pte_gpa[gw->level], &e))
			return KMMU_GW_NO_MEMORY;
		gw->pte[gw->level] = e;
		kind = ept ? ept_kind(e, gw->level) : npt_kind(e, gw->level);
		if (kind == GW_ENTRY_NOT_PRESENT)
			return KMMU_GW_NOT_PRESENT;
		if (kind == GW_ENTRY_BAD)
			return KMMU_GW_MISCONFIG;
		if (kmmu_mutant(GW_LEAF_PERMS_ONLY))
			gw->pte_access = kmmu_gw_entry_access(gw->format, e);
		else
			gw->pte_access &= kmmu_gw_entry_access(gw->format, e);
		if (kind == GW_ENTRY_LEAF)
			break;
		table = e & L1_ADDR_MASK;
	}
	if (!access_allowed(gw->pte_access, gw->access))
		return KMMU_GW_PERMISSION;

	gw->l1_gpa = (e & L1_ADDR_MASK & ~large_leaf_rsvd(gw->level, KMMU_PAGE_SHIFT)) |
		     (gw->l2_gpa & (kmmu_pages_per_level(gw->level) * KMMU_PAGE_SIZE - 1));
	if (!ept || gw->ad) {
		ret = gw_set_ad(mem, gw);
		if (ret == -EFAULT)
			return KMMU_GW_NO_MEMORY;
		if (ret)
			return ret;
	}
	return KMMU_GW_OK;
}

/**
 * kmmu_guest_walk() - translate gw->l2_gpa through L1's tables
 * @mem: how to read and update L1 memory
 * @gw: the walk: root, format, A/D, address and access in; the result out
 *
 * May sleep if @mem's callbacks do.
 *
 * Return: 0 with gw->fault set (KMMU_GW_OK: gw->l1_gpa, gw->level and
 * gw->pte_access; a fault: gw->level and gw->pte[gw->level] name the entry
 * that caused it, NO_MEMORY the table that could not be read), or -EINVAL
 * when the root or the address is not one L1 can have (the caller checks).
 */
int kmmu_guest_walk(const struct kmmu_gw_mem *mem, struct kmmu_guest_walk *gw)
{
	int ret;

	if (gw->root & ~L1_ADDR_MASK || gw->l2_gpa >= KMMU_L1_GPA_LIMIT)
		return -EINVAL;
	do {
		ret = gw_walk_once(mem, gw);
	} while (ret == -EAGAIN);
	gw->fault = ret;
	return 0;
}

/* ---- L1 memory through the VM's memslots ---- */

struct gw_slots {
	struct kmmu_vcpu *vcpu;
	struct kmmu_memslots *slots;
};

/* The hardware vCPU's private slot is kmmu's own, not L1 memory. */
static struct kmmu_memory_slot *gw_slot(struct gw_slots *m, gpa_t gpa, unsigned long *hva)
{
	gfn_t gfn = gpa >> KMMU_PAGE_SHIFT;
	struct kmmu_memory_slot *slot = kmmu_gfn_to_memslot(m->slots, gfn);

	if (!slot || kmmu_gfn_private(m->vcpu->kmmu, gfn))
		return NULL;
	*hva = kmmu_gfn_to_hva(slot, gfn) + (gpa & (KMMU_PAGE_SIZE - 1));
	return slot;
}

static int gw_slots_read(void *ctx, gpa_t gpa, u64 *val)
{
	unsigned long hva;

	if (!gw_slot(ctx, gpa, &hva))
		return -EFAULT;
	return os_read_user_u64(hva, val);
}

/*
 * A/D bits go into L1 memory as a write by the CPU: the page is logged
 * dirty.  As KVM does, a table in a read-only memslot keeps its bits.
 */
static int gw_slots_update(void *ctx, gpa_t gpa, u64 old, u64 new)
{
	struct gw_slots *m = ctx;
	struct kmmu_memory_slot *slot;
	unsigned long hva;
	int ret;

	slot = gw_slot(m, gpa, &hva);
	if (!slot)
		return -EFAULT;
	if (slot->flags & KMMU_MEM_READONLY)
		return 1;
	ret = os_cmpxchg_user_u64(hva, old, new);
	if (!ret && !kmmu_mutant(GW_AD_NOT_LOGGED))
		kmmu_vcpu_mark_page_dirty(m->vcpu, slot, gpa >> KMMU_PAGE_SHIFT);
	return ret;
}

/**
 * kmmu_guest_walk_vcpu() - walk L1's tables in the VM's memory
 * @vcpu: the vCPU whose L2 access this is (dirty rings log A/D writes there)
 * @as_id: the address space L1's tables are in
 * @gw: as for kmmu_guest_walk()
 *
 * Called with kmmu->srcu held, outside guest mode: it may sleep.
 *
 * Return: as kmmu_guest_walk().
 */
int kmmu_guest_walk_vcpu(struct kmmu_vcpu *vcpu, int as_id, struct kmmu_guest_walk *gw)
{
	struct gw_slots m = { .vcpu = vcpu, .slots = kmmu_memslots(vcpu->kmmu, as_id) };
	const struct kmmu_gw_mem mem = {
		.read = gw_slots_read, .update = gw_slots_update, .ctx = &m,
	};

	return kmmu_guest_walk(&mem, gw);
}
