// SPDX-License-Identifier: GPL-2.0
/*
 * The software vCPU's page walker, behaving as EPT and NPT hardware do:
 * present and reserved-bit checks per entry, permissions accumulated across
 * levels, 4K/2M/1G leaves, and A/D bits set atomically on the way (a walk
 * whose entry changed under it starts over, as a locked update would).
 */
#include "walker.h"
#include "spp.h"

enum walk_entry {
	ENTRY_NOT_PRESENT,
	ENTRY_BAD,		/* misconfigured / reserved bits set */
	ENTRY_TABLE,
	ENTRY_LEAF,
};

static bool leaf_pfn_misaligned(u64 e, int level)
{
	return spte_to_pfn(e) & (kmmu_pages_per_level(level) - 1);
}

static enum walk_entry ept_entry_kind(u64 e, int level)
{
	u64 mt = (e & EPT_MT_MASK) >> EPT_MT_SHIFT;

	if (!(e & EPT_RWX))
		return ENTRY_NOT_PRESENT;
	if ((e & EPT_W) && !(e & EPT_R))
		return ENTRY_BAD;
	if (level == KMMU_MAX_LEVEL && (e & EPT_LARGE))
		return ENTRY_BAD;
	if (level > KMMU_LEVEL_4K && !(e & EPT_LARGE))
		return ENTRY_TABLE;
	/* Memory types 2, 3 and 7 are reserved. */
	if (mt == 2 || mt == 3 || mt == 7)
		return ENTRY_BAD;
	if (level > KMMU_LEVEL_4K && leaf_pfn_misaligned(e, level))
		return ENTRY_BAD;
	return ENTRY_LEAF;
}

static enum walk_entry npt_entry_kind(u64 e, int level)
{
	if (!(e & NPT_P))
		return ENTRY_NOT_PRESENT;
	if (e & NPT_RSVD_BIT51)
		return ENTRY_BAD;
	if (level == KMMU_MAX_LEVEL && (e & NPT_PS))
		return ENTRY_BAD;
	if (level > KMMU_LEVEL_4K && !(e & NPT_PS))
		return ENTRY_TABLE;
	if (level > KMMU_LEVEL_4K && leaf_pfn_misaligned(e, level))
		return ENTRY_BAD;
	return ENTRY_LEAF;
}

/* Permissions granted so far: the AND of every level walked. */
struct walk_perm {
	bool r, w, x;
};

static void walk_perm_apply(const struct kmmu_spte_fmt *f, struct walk_perm *p, u64 e)
{
	if (f->format == KMMU_SPTE_FORMAT_EPT) {
		p->r &= !!(e & EPT_R);
		p->w &= !!(e & EPT_W);
		p->x &= !!(e & EPT_X);
	} else {
		/* Nested walks are user accesses: US must be set everywhere. */
		p->r &= !!(e & NPT_US);
		p->w &= (e & NPT_RW) && (e & NPT_US);
		p->x &= !(e & NPT_NX) && (e & NPT_US);
	}
}

static bool walk_perm_allows(const struct walk_perm *p, unsigned int access)
{
	if (access & KMMU_ACC_WRITE)
		return p->r && p->w;
	if (access & KMMU_ACC_EXEC)
		return p->x;
	return p->r;
}

/*
 * A write through a 4K EPT leaf with W clear and SPP set: the CPU reads the
 * page's write-permission vector from the SPP table.  A table missing on
 * the way, or a malformed entry, is an SPP-related exit; w->level and
 * w->spte then name the SPPT entry.
 */
static enum kmmu_walk_result sppt_walk(u64 *sppt, gfn_t gfn, struct kmmu_walk *w, u64 *vec)
{
	u64 *pt = sppt, e;
	int level;

	w->spte = 0;
	w->level = SPPT_LEVELS;
	if (!pt)
		return KMMU_WALK_SPP_MISS;
	for (level = SPPT_LEVELS; level > KMMU_LEVEL_4K; level--) {
		/* Acquire: the next table was filled before it was linked. */
		e = smp_load_acquire(&pt[kmmu_spte_index(gfn, level)]);
		w->level = level;
		w->spte = e;
		if (!(e & SPPT_VALID))
			return KMMU_WALK_SPP_MISS;
		if (e & SPPT_RSVD_MASK)
			return KMMU_WALK_SPP_MISCONFIG;
		pt = sppt_child(e);
	}
	e = READ_ONCE(pt[kmmu_spte_index(gfn, KMMU_LEVEL_4K)]);
	w->level = KMMU_LEVEL_4K;
	w->spte = e;
	if (e & SPPT_VECTOR_RSVD)
		return KMMU_WALK_SPP_MISCONFIG;
	*vec = e;
	return KMMU_WALK_OK;
}

/**
 * kmmu_walk_tdp() - translate w->gpa as the CPU would
 * @f: the VM's format (tells EPT from NPT, and whether A/D bits are on)
 * @root_pt: the root table
 * @w: the walk: gpa and access in, result out
 *
 * Called under rcu_read_lock(), in guest mode.
 *
 * Return: KMMU_WALK_OK with w->pfn and w->writable, or the exit the CPU
 * would take, with w->level and w->spte naming the entry that caused it.
 */
enum kmmu_walk_result kmmu_walk_tdp(const struct kmmu_spte_fmt *f, u64 *root_pt,
				    struct kmmu_walk *w)
{
	bool ept = f->format == KMMU_SPTE_FORMAT_EPT;
	bool ad = !ept || f->ad_enabled;
	u64 accessed = ept ? EPT_A : NPT_A;
	u64 dirty = ept ? EPT_D : NPT_D;
	gfn_t gfn = w->gpa >> KMMU_PAGE_SHIFT;
	struct walk_perm perm, upper;
	enum walk_entry kind;
	u64 *pt, *ep, e, new_e, vec = 0;
	bool spp_write;

restart:
	perm = (struct walk_perm){ true, true, true };
	pt = root_pt;
	w->present = false;
	w->spp = false;
	w->spp_wmask = 0;
	for (w->level = KMMU_MAX_LEVEL; ; w->level--) {
		ep = pt + kmmu_spte_index(gfn, w->level);
		/* Acquire: the next table, and the data, are read through it. */
		e = smp_load_acquire(ep);
		w->spte = e;
		kind = ept ? ept_entry_kind(e, w->level) : npt_entry_kind(e, w->level);
		if (kind == ENTRY_NOT_PRESENT)
			return KMMU_WALK_VIOLATION;
		if (kind == ENTRY_BAD)
			return KMMU_WALK_MISCONFIG;

		upper = perm;
		walk_perm_apply(f, &perm, e);
		if (kind == ENTRY_LEAF)
			break;
		if (ad && !(e & accessed) && !try_cmpxchg64(ep, &e, e | accessed))
			goto restart;
		pt = os_pfn_to_pt(spte_to_pfn(e));
	}

	/*
	 * Sub-page permissions: only for a write that everything but the
	 * leaf's W allows, through a 4K leaf with SPP set.
	 */
	spp_write = ept && (w->access & KMMU_ACC_WRITE) && w->level == KMMU_LEVEL_4K &&
		    (e & EPT_SPP) && !(e & EPT_W) && perm.r && upper.w;
	if (spp_write) {
		enum kmmu_walk_result res = sppt_walk(w->sppt, gfn, w, &vec);

		if (res != KMMU_WALK_OK)
			return res;
		w->level = KMMU_LEVEL_4K;
		w->spte = e;
		if (!(vec & BIT_ULL(2 * spp_subpage_of(w->gpa)))) {
			w->present = true;
			w->spp = true;
			return KMMU_WALK_VIOLATION;
		}
	} else if (!walk_perm_allows(&perm, w->access)) {
		w->present = true;
		return KMMU_WALK_VIOLATION;
	}

	new_e = e;
	if (ad) {
		new_e |= accessed;
		if (w->access & KMMU_ACC_WRITE)
			new_e |= dirty;
	}
	if (new_e != e && !try_cmpxchg64(ep, &e, new_e))
		goto restart;

	w->dirtied = new_e & ~e & dirty;
	w->pfn = spte_to_pfn(e) + (gfn & (kmmu_pages_per_level(w->level) - 1));
	w->writable = perm.r && perm.w && (!ad || (new_e & dirty));
	/* The TLB keeps the vector, as it keeps W: a change needs a flush. */
	if (spp_write)
		w->spp_wmask = spp_vector_to_map(vec);
	return KMMU_WALK_OK;
}
