/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SPTE layouts for Intel EPT and AMD NPT, and the helpers that build and
 * read them.  The format is chosen once per VM and described by a
 * struct kmmu_spte_fmt, so one process (the userspace tests) can run VMs of
 * both formats side by side.
 *
 * Bits the two formats share:
 *
 *   11     SPTE_MMU_PRESENT  software: "kmmu installed something here".  Every
 *                            shadow-present SPTE has it and no non-present,
 *                            frozen or MMIO value does, so one bit answers
 *                            "present?" whatever the non-present value is.
 *   12-50  pfn               bit 51 stays clear so that NPT MMIO SPTEs can use
 *                            it as a reserved bit (modelled MAXPHYADDR is 51).
 *   52-53  A/D type          software: how this SPTE tracks accesses
 *                            (A/D bits, or access tracking).
 *   54-56  saved R/X         EPT access tracking: R (54) and X (56) while the
 *                            SPTE is made non-present to the CPU.
 *
 * EPT 4K leaves of pages with sub-page permissions (KMMU_CAP_SPP) have W
 * clear and SPP (61) set: the CPU then takes write permission per 128-byte
 * sub-page from the SPP table (spp.c).
 */
#ifndef KMMU_SPTE_H
#define KMMU_SPTE_H

#include "os.h"

#define KMMU_MAX_LEVEL		4	/* 4-level tables: 48-bit guest physical */
#define KMMU_PT_ENTRIES		512
#define KMMU_LEVEL_BITS		9

#define SPTE_MMU_PRESENT_MASK	BIT_ULL(11)
#define SPTE_PFN_MASK		GENMASK_ULL(50, 12)

/*
 * How the SPTE records accesses, in software bits so that a walker and a
 * zapper can tell without looking at the VM.  "Enabled" is a plain 0 so that
 * a freshly built SPTE is A/D-enabled unless said otherwise.
 */
#define SPTE_TDP_AD_SHIFT	52
#define SPTE_TDP_AD_MASK	(3ULL << SPTE_TDP_AD_SHIFT)
#define SPTE_TDP_AD_ENABLED	(0ULL << SPTE_TDP_AD_SHIFT)
#define SPTE_TDP_AD_DISABLED	(1ULL << SPTE_TDP_AD_SHIFT)

/* EPT access tracking keeps R and X here while the SPTE is non-present. */
#define SPTE_ACC_TRACK_SAVED_SHIFT	54
#define SPTE_ACC_TRACK_SAVED_BITS	(EPT_R | EPT_X)
#define SPTE_ACC_TRACK_SAVED_MASK	(SPTE_ACC_TRACK_SAVED_BITS << SPTE_ACC_TRACK_SAVED_SHIFT)

/* ---- Intel EPT (SDM vol. 3, "EPT Translation Mechanism") ---- */
#define EPT_R			BIT_ULL(0)	/* read; an entry with none of R/W/X is not present */
#define EPT_W			BIT_ULL(1)	/* write; W without R is a misconfiguration */
#define EPT_X			BIT_ULL(2)	/* supervisor execute */
#define EPT_RWX			(EPT_R | EPT_W | EPT_X)
#define EPT_MT_SHIFT		3		/* bits 3-5: memory type of a leaf */
#define EPT_MT_MASK		(7ULL << EPT_MT_SHIFT)
#define EPT_MT_WB		(6ULL << EPT_MT_SHIFT)
#define EPT_IPAT		BIT_ULL(6)	/* ignore guest PAT: the leaf's type wins */
#define EPT_LARGE		BIT_ULL(7)	/* leaf at 2M/1G */
#define EPT_A			BIT_ULL(8)	/* set by the CPU on any access (A/D enabled in EPTP) */
#define EPT_D			BIT_ULL(9)	/* set by the CPU on a write to a leaf */
#define EPT_SPP			BIT_ULL(61)	/* 4K leaf, W clear: write per sub-page (SPPT) */
#define EPT_SUPPRESS_VE		BIT_ULL(63)	/* no #VE on a violation through this entry */
/* Software bits, ignored by the CPU (57-59 are not claimed by SPP or PW). */
#define EPT_HOST_WRITABLE	BIT_ULL(57)	/* the host mapping allows writes */
#define EPT_MMU_WRITABLE	BIT_ULL(58)	/* kmmu allows writes (not write-protected) */
#define EPT_REFCOUNTED		BIT_ULL(59)	/* pfn has a struct page we may mark A/D */
/* Write+execute without read: the CPU takes an EPT misconfig exit. */
#define EPT_MMIO_VALUE		(EPT_W | EPT_X)
#define EPT_MMIO_MASK		EPT_RWX

/* ---- AMD NPT (APM vol. 2, "Nested Paging"; x86-64 page table format) ---- */
#define NPT_P			BIT_ULL(0)	/* present */
#define NPT_RW			BIT_ULL(1)	/* writable */
#define NPT_US			BIT_ULL(2)	/* nested walks are user accesses: always set */
#define NPT_A			BIT_ULL(5)	/* set by the CPU on any access */
#define NPT_D			BIT_ULL(6)	/* set by the CPU on a write to a leaf */
#define NPT_PS			BIT_ULL(7)	/* leaf at 2M/1G */
#define NPT_NX			BIT_ULL(63)	/* no execute */
/* Software bits: 9-10 are AVL in every x86-64 entry, 58 is free in leaves. */
#define NPT_HOST_WRITABLE	BIT_ULL(9)
#define NPT_MMU_WRITABLE	BIT_ULL(10)
#define NPT_REFCOUNTED		BIT_ULL(58)
/* Present with a reserved address bit: the CPU reports #NPF with RSVD set. */
#define NPT_RSVD_BIT51		BIT_ULL(51)
#define NPT_MMIO_VALUE		(NPT_P | NPT_RSVD_BIT51)
#define NPT_MMIO_MASK		(NPT_P | NPT_RSVD_BIT51)

/*
 * MMIO SPTEs carry the low 19 bits of the memslot generation they were made
 * in (bits 3-10 and 52-62), so a memslot change makes them stale at once.
 */
#define MMIO_GEN_LOW_MASK	GENMASK_ULL(10, 3)
#define MMIO_GEN_LOW_SHIFT	3
#define MMIO_GEN_LOW_BITS	8
#define MMIO_GEN_HIGH_MASK	GENMASK_ULL(62, 52)
#define MMIO_GEN_HIGH_SHIFT	(52 - MMIO_GEN_LOW_BITS)
#define MMIO_GEN_MASK		GENMASK_ULL(18, 0)

/*
 * The value written into an SPTE that is being torn down: not present for
 * either CPU (no R/W/X, no P) and not shadow-present, so every other writer
 * sees it, fails its cmpxchg and retries.  Or'd with the VM's non-present
 * value so suppress-#VE stays set where it must.
 */
#define SPTE_FROZEN_BITS	0x5a0ULL

static_assert(!(SPTE_MMU_PRESENT_MASK & SPTE_PFN_MASK));
static_assert(!(SPTE_TDP_AD_MASK & SPTE_ACC_TRACK_SAVED_MASK));
static_assert(!((SPTE_TDP_AD_MASK | SPTE_ACC_TRACK_SAVED_MASK) & SPTE_PFN_MASK));
static_assert(!((EPT_RWX | EPT_MT_MASK | EPT_IPAT | EPT_LARGE | EPT_A | EPT_D) &
		(SPTE_PFN_MASK | SPTE_MMU_PRESENT_MASK)));
static_assert(!((EPT_HOST_WRITABLE | EPT_MMU_WRITABLE | EPT_REFCOUNTED) &
		(SPTE_TDP_AD_MASK | SPTE_ACC_TRACK_SAVED_MASK | SPTE_PFN_MASK |
		 EPT_SUPPRESS_VE)));
static_assert(EPT_HOST_WRITABLE != EPT_MMU_WRITABLE && EPT_MMU_WRITABLE != EPT_REFCOUNTED);
static_assert(!(EPT_SPP & (EPT_HOST_WRITABLE | EPT_MMU_WRITABLE | EPT_REFCOUNTED |
			   SPTE_TDP_AD_MASK | SPTE_ACC_TRACK_SAVED_MASK | SPTE_PFN_MASK |
			   SPTE_FROZEN_BITS)));
static_assert(!((NPT_P | NPT_RW | NPT_US | NPT_A | NPT_D | NPT_PS | NPT_NX) &
		(SPTE_PFN_MASK | SPTE_MMU_PRESENT_MASK | NPT_HOST_WRITABLE |
		 NPT_MMU_WRITABLE | NPT_REFCOUNTED)));
static_assert(!((NPT_HOST_WRITABLE | NPT_MMU_WRITABLE | NPT_REFCOUNTED) &
		(SPTE_TDP_AD_MASK | SPTE_ACC_TRACK_SAVED_MASK | SPTE_PFN_MASK)));
static_assert(NPT_HOST_WRITABLE != NPT_MMU_WRITABLE && NPT_MMU_WRITABLE != NPT_REFCOUNTED);
static_assert(!(SPTE_PFN_MASK & NPT_RSVD_BIT51));
static_assert(!(SPTE_FROZEN_BITS & (SPTE_MMU_PRESENT_MASK | EPT_RWX | NPT_P)));
static_assert(!((MMIO_GEN_LOW_MASK | MMIO_GEN_HIGH_MASK) &
		(SPTE_MMU_PRESENT_MASK | SPTE_PFN_MASK | EPT_MMIO_MASK | NPT_MMIO_MASK)));

/*
 * Everything that differs between formats and VM configurations, computed
 * once when the VM is created and never changed afterwards.
 */
struct kmmu_spte_fmt {
	u32 format;		/* KMMU_SPTE_FORMAT_EPT or _NPT */
	bool ad_enabled;	/* A/D bits, or access tracking (EPT only) */
	u64 nonpresent;		/* value of every non-present SPTE */
	u64 frozen;		/* value of an SPTE being torn down */
	u64 readable;		/* EPT R / NPT P */
	u64 writable;		/* EPT W / NPT RW */
	u64 executable;		/* EPT X; NPT: none, NX is cleared instead */
	u64 nx;			/* NPT NX */
	u64 user;		/* NPT US */
	u64 accessed;		/* 0 when A/D bits are off */
	u64 dirty;		/* 0 when A/D bits are off */
	u64 large;		/* page-size bit of a 2M/1G leaf */
	u64 host_writable;
	u64 mmu_writable;
	u64 refcounted;
	u64 spp;		/* EPT SPP; 0 for NPT, which has no sub-page permissions */
	u64 acc_track_mask;	/* bits cleared to make an SPTE access-tracked */
	u64 leaf_memtype;	/* EPT memory type for RAM leaves */
	u64 table_bits;		/* what a non-leaf SPTE sets besides pfn and present */
	u64 mmio_value;
	u64 mmio_mask;
};

int kmmu_spte_fmt_init(struct kmmu_spte_fmt *f, u32 format, u32 vm_flags);

/* Levels: pages covered by one SPTE, and the index of a gfn in its table. */
static inline u64 kmmu_pages_per_level(int level)
{
	return 1ULL << ((level - 1) * KMMU_LEVEL_BITS);
}

static inline gfn_t kmmu_gfn_round_for_level(gfn_t gfn, int level)
{
	return gfn & ~(kmmu_pages_per_level(level) - 1);
}

static inline unsigned int kmmu_spte_index(gfn_t gfn, int level)
{
	return (gfn >> ((level - 1) * KMMU_LEVEL_BITS)) & (KMMU_PT_ENTRIES - 1);
}

static inline bool is_shadow_present_spte(u64 spte)
{
	return spte & SPTE_MMU_PRESENT_MASK;
}

static inline bool is_frozen_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte == f->frozen;
}

static inline bool is_large_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & f->large;
}

static inline bool is_last_spte(const struct kmmu_spte_fmt *f, u64 spte, int level)
{
	return level == KMMU_LEVEL_4K || is_large_spte(f, spte);
}

static inline kmmu_pfn_t spte_to_pfn(u64 spte)
{
	return (spte & SPTE_PFN_MASK) >> KMMU_PAGE_SHIFT;
}

static inline bool spte_ad_enabled(u64 spte)
{
	return (spte & SPTE_TDP_AD_MASK) == SPTE_TDP_AD_ENABLED;
}

static inline bool is_writable_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & f->writable;
}

/* A 4K leaf whose writes the CPU checks per sub-page (KMMU_CAP_SPP). */
static inline bool is_spp_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & f->spp;
}

/* The CPU may write through it: W, or SPP with a writable sub-page. */
static inline bool spte_may_write(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & (f->writable | f->spp);
}

static inline bool is_mmu_writable_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & f->mmu_writable;
}

static inline bool is_refcounted_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return spte & f->refcounted;
}

static inline bool is_mmio_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return (spte & f->mmio_mask) == f->mmio_value && !is_shadow_present_spte(spte);
}

/* Access tracking: an A/D-disabled SPTE whose R/W/X were moved aside. */
static inline bool is_access_track_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	return !spte_ad_enabled(spte) && !(spte & f->acc_track_mask);
}

static inline bool is_accessed_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	if (spte_ad_enabled(spte))
		return spte & f->accessed;
	return !is_access_track_spte(f, spte);
}

/* Without a D bit, a writable SPTE has to be assumed written. */
static inline bool is_dirty_spte(const struct kmmu_spte_fmt *f, u64 spte)
{
	if (spte_ad_enabled(spte))
		return spte & f->dirty;
	return spte_may_write(f, spte);
}

/*
 * Whether a writer under the write lock must change the SPTE atomically
 * (xchg), because something may change it behind mmu_lock: KVM's rule
 * (spte_needs_atomic_update()).
 */
static inline bool spte_has_volatile_bits(const struct kmmu_spte_fmt *f, u64 spte)
{
	/* The fast path may make it writable. */
	if (!is_writable_spte(f, spte) && is_mmu_writable_spte(f, spte))
		return true;
	/* Lockless aging may access-track it, and the fast path restore it. */
	if (!spte_ad_enabled(spte))
		return true;
	/*
	 * The CPU may set D.  Not A: a lost A bit only makes a page look old
	 * to one aging pass, which aging tolerates anyway (it does not flush).
	 */
	return spte_may_write(f, spte) && !(spte & f->dirty);
}

/* Access kinds, as the fault path and the walker name them. */
#define KMMU_ACC_READ		BIT(0)
#define KMMU_ACC_WRITE		BIT(1)
#define KMMU_ACC_EXEC		BIT(2)
#define KMMU_ACC_ALL		(KMMU_ACC_READ | KMMU_ACC_WRITE | KMMU_ACC_EXEC)

/* Everything make_spte() needs to know about one leaf. */
struct kmmu_spte_args {
	kmmu_pfn_t pfn;
	int level;
	unsigned int access;	/* KMMU_ACC_*: what the guest may do */
	bool host_writable;
	bool refcounted;
	bool prefetch;		/* not faulted by an access: leave A clear */
	bool wrprot;		/* MMU-writable, but W only on the first write */
	bool spp;		/* the page has sub-page permissions: W never, SPP instead */
};

bool spte_writable_invariants_ok(const struct kmmu_spte_fmt *f, u64 spte);
u64 make_spte(const struct kmmu_spte_fmt *f, const struct kmmu_spte_args *a);
u64 make_table_spte(const struct kmmu_spte_fmt *f, kmmu_pfn_t child_pfn);
u64 make_huge_page_split_spte(const struct kmmu_spte_fmt *f, u64 huge_spte, int child_level,
			      int index);
u64 make_mmio_spte(const struct kmmu_spte_fmt *f, gfn_t gfn, u64 gen);
u64 mmio_spte_gen(u64 spte);
gfn_t mmio_spte_gfn(u64 spte);
u64 mark_spte_for_access_track(const struct kmmu_spte_fmt *f, u64 spte);

/*
 * is_accessed_spte() and mark_spte_for_access_track() for the loops of an
 * aging pass, which keep f->accessed in @accessed: each cmpxchg of the
 * pass would make the compiler load it again, and a load after a locked
 * instruction waits for it.
 */
static __always_inline bool spte_young(const struct kmmu_spte_fmt *f, u64 accessed, u64 spte)
{
	return spte_ad_enabled(spte) ? spte & accessed : !is_access_track_spte(f, spte);
}

static __always_inline u64 spte_aged(const struct kmmu_spte_fmt *f, u64 accessed, u64 spte)
{
	return spte_ad_enabled(spte) ? spte & ~accessed : mark_spte_for_access_track(f, spte);
}
u64 restore_acc_track_spte(u64 spte);
bool is_access_allowed(const struct kmmu_spte_fmt *f, u64 spte, unsigned int access);

#endif /* KMMU_SPTE_H */
