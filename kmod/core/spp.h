/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sub-page write permissions (KMMU_CAP_SPP, EPT VMs only): the per-slot
 * access maps, which are the truth, and the SPP table (SPPT) that the CPU
 * reads, built from them.  SPP.md has the design and the reasons.
 */
#ifndef KMMU_SPP_H
#define KMMU_SPP_H

#include "kmmu.h"
#include "memslot.h"

/*
 * The SPPT, as the SDM lays it out: four levels indexed by the gfn like
 * EPT.  A non-leaf entry is valid with bit 0, holds the next table's
 * address in bits 12-51 and must have bits 1-11 and 52-63 clear.  A leaf
 * (level 1) entry is the page's write-permission vector: bit 2i allows
 * writes to sub-page i; the odd bits are reserved and must be clear.
 */
#define SPPT_LEVELS		4
#define SPPT_VALID		BIT_ULL(0)
#define SPPT_ADDR_MASK		GENMASK_ULL(51, 12)
#define SPPT_RSVD_MASK		(~(SPPT_ADDR_MASK | SPPT_VALID))
#define SPPT_VECTOR_RSVD	0xaaaaaaaaaaaaaaaaULL
#define SPPT_VECTOR_FULL	0x5555555555555555ULL

/* The table a valid non-leaf SPPT entry points to. */
static inline u64 *sppt_child(u64 e)
{
	return os_pfn_to_pt((e & SPPT_ADDR_MASK) >> KMMU_PAGE_SHIFT);
}

/* Sub-page @i of a page: the bit of a u32 access map, the bit of a vector. */
static inline unsigned int spp_subpage_of(gpa_t gpa)
{
	return (gpa >> 7) & (KMMU_SUBPAGES_PER_PAGE - 1);
}

u64 spp_map_to_vector(u32 map);
u32 spp_vector_to_map(u64 vec);

/* A page whose map is not all-ones: mapped 4K, W clear, SPP set. */
static inline bool kmmu_spp_restricted(const struct kmmu_memory_slot *slot, gfn_t gfn)
{
	const u32 *map = READ_ONCE(slot->spp_access);

	return map && READ_ONCE(map[gfn - slot->base_gfn]) != KMMU_SUBPAGE_FULL_ACCESS;
}

int kmmu_spp_enable(struct kmmu *kmmu, u64 arg);
int kmmu_spp_slot_alloc(struct kmmu *kmmu, struct kmmu_memory_slot *slot);
void kmmu_spp_slot_free(struct kmmu_memory_slot *slot);
int kmmu_spp_get_access(struct kmmu *kmmu, const struct kmmu_subpage_access *req, u32 *map);
int kmmu_spp_set_access(struct kmmu *kmmu, const struct kmmu_subpage_access *req,
			const u32 *map);
int kmmu_spp_handle_miss(struct kmmu_vcpu *vcpu, int as_id, gfn_t gfn);
bool kmmu_spp_write_allowed(struct kmmu_vcpu *vcpu, int as_id, gpa_t gpa);
void kmmu_spp_destroy(struct kmmu *kmmu);

#endif /* KMMU_SPP_H */
