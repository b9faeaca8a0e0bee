/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An L1 hypervisor's own EPT or NPT tables, built in L1 memory through the
 * memslot's userspace address, for nested workloads (KMMU_WL_NESTED): what
 * the selftests and the bench drivers give the vCPU to walk as L2.
 */
#ifndef KMMU_L1_TABLES_H
#define KMMU_L1_TABLES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/kmmu.h>

/* L1's entries, as the SDM and the APM lay them out. */
#define EPT_R		(1ULL << 0)
#define EPT_W		(1ULL << 1)
#define EPT_X		(1ULL << 2)
#define EPT_MT_WB	(6ULL << 3)
#define EPT_A		(1ULL << 8)
#define EPT_D		(1ULL << 9)
#define NPT_P		(1ULL << 0)
#define NPT_RW		(1ULL << 1)
#define NPT_US		(1ULL << 2)
#define NPT_A		(1ULL << 5)
#define NPT_D		(1ULL << 6)
#define PTE_PS		(1ULL << 7)
#define PTE_ADDR	0x0000fffffffff000ULL

#define L1_PAGE		4096ULL

/* Table pages handed out one after another from [gpa, gpa + size). */
struct kmmu_l1_tables {
	uint8_t *hva;		/* where gpa is in this process */
	uint64_t gpa;
	uint64_t size;
	uint64_t next;		/* L1 gpa of the next free table page */
	uint64_t root;		/* L1 gpa of the root table */
	bool ept;		/* EPT entries, else NPT */
};

static inline uint64_t *kmmu_l1_hva(struct kmmu_l1_tables *t, uint64_t gpa)
{
	return (uint64_t *)(t->hva + (gpa - t->gpa));
}

/* A zeroed table page; running out is a sizing bug of the caller. */
static inline uint64_t kmmu_l1_new_table(struct kmmu_l1_tables *t)
{
	uint64_t gpa = t->next;

	if (gpa + L1_PAGE > t->gpa + t->size) {
		fprintf(stderr, "L1 tables: the %llu bytes at 0x%llx are full\n",
			(unsigned long long)t->size, (unsigned long long)t->gpa);
		abort();
	}
	t->next += L1_PAGE;
	memset(kmmu_l1_hva(t, gpa), 0, L1_PAGE);
	return gpa;
}

/* Tables in @size bytes at L1 gpa @gpa, mapped at @hva; makes the root. */
static inline void kmmu_l1_init(struct kmmu_l1_tables *t, void *hva, uint64_t gpa,
				uint64_t size, bool ept)
{
	*t = (struct kmmu_l1_tables){
		.hva = hva, .gpa = gpa, .size = size, .next = gpa, .ept = ept,
	};
	t->root = kmmu_l1_new_table(t);
}

/* A table entry pointing to @gpa, everything allowed. */
static inline uint64_t kmmu_l1_table_entry(const struct kmmu_l1_tables *t, uint64_t gpa)
{
	return gpa | (t->ept ? EPT_R | EPT_W | EPT_X : NPT_P | NPT_RW | NPT_US);
}

/* A leaf of @level mapping @gpa, writable or not. */
static inline uint64_t kmmu_l1_leaf_entry(const struct kmmu_l1_tables *t, uint64_t gpa,
					  int level, bool writable)
{
	uint64_t e = gpa | (level > 1 ? PTE_PS : 0);

	if (t->ept)
		return e | EPT_R | EPT_X | EPT_MT_WB | (writable ? EPT_W : 0);
	return e | NPT_P | NPT_US | (writable ? NPT_RW : 0);
}

static inline int kmmu_l1_index(uint64_t gpa, int level)
{
	return (gpa >> (12 + 9 * (level - 1))) & 511;
}

/* The entry of @level on the way to @l2_gpa, tables made as needed. */
static inline uint64_t *kmmu_l1_entry(struct kmmu_l1_tables *t, uint64_t l2_gpa, int level)
{
	uint64_t table = t->root;
	int l;

	for (l = 4; l > level; l--) {
		uint64_t *e = &kmmu_l1_hva(t, table)[kmmu_l1_index(l2_gpa, l)];

		if (!*e)
			*e = kmmu_l1_table_entry(t, kmmu_l1_new_table(t));
		table = *e & PTE_ADDR;
	}
	return &kmmu_l1_hva(t, table)[kmmu_l1_index(l2_gpa, level)];
}

/* Map [l2_gpa, l2_gpa + size) to l1_gpa with leaves of @level. */
static inline void kmmu_l1_map(struct kmmu_l1_tables *t, uint64_t l2_gpa, uint64_t l1_gpa,
			       uint64_t size, int level, bool writable)
{
	uint64_t step = L1_PAGE << (9 * (level - 1)), off;

	for (off = 0; off < size; off += step)
		*kmmu_l1_entry(t, l2_gpa + off, level) =
			kmmu_l1_leaf_entry(t, l1_gpa + off, level, writable);
}

/* Table pages that mapping @size bytes with 4K leaves takes, the root included. */
static inline uint64_t kmmu_l1_tables_for(uint64_t size)
{
	uint64_t pt = (size + (512 * L1_PAGE) - 1) / (512 * L1_PAGE);
	uint64_t pd = (pt + 511) / 512, pdpt = (pd + 511) / 512;

	/* One more at each level for a range that crosses a table's edge. */
	return 1 + (pdpt + 1) + (pd + 1) + (pt + 1);
}

/* What the workload's nested_root is: the EPTP (WB, 4 levels, A/D or not) or the nCR3. */
static inline uint64_t kmmu_l1_root(const struct kmmu_l1_tables *t, bool ad)
{
	if (!t->ept)
		return t->root;
	return t->root | KMMU_EPTP_MT_WB | KMMU_EPTP_PWL_4 | (ad ? KMMU_EPTP_AD : 0);
}

#endif /* KMMU_L1_TABLES_H */
