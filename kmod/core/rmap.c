// SPDX-License-Identifier: GPL-2.0
/*
 * The shadow MMU's reverse maps and their lock bit (see rmap.h).
 *
 * Writers hold mmu_lock for write, which already excludes each other; they
 * take an rmap's lock only to keep lockless readers out while the list
 * changes, and free a descriptor only after it is unlinked under that
 * lock, so a reader holding the lock never touches freed memory and no
 * RCU is needed for descriptors.  The shadow SPTEs themselves leave an
 * rmap, under its lock, before their table is zapped, and the table is
 * freed after a grace period: aging reads the one SPTE of a single-entry
 * rmap under RCU alone.
 */
#include "rmap.h"
#include "kmmu.h"

int kmmu_rmap_cache_topup(struct kmmu_rmap_cache *cache, int min)
{
	while (cache->nr < min) {
		struct kmmu_rmap_desc *desc = os_zalloc(sizeof(*desc));

		if (!desc)
			return -ENOMEM;
		desc->more = cache->free;
		cache->free = desc;
		cache->nr++;
	}
	return 0;
}

static struct kmmu_rmap_desc *rmap_cache_pop(struct kmmu_rmap_cache *cache)
{
	struct kmmu_rmap_desc *desc = cache->free;

	if (desc) {
		cache->free = desc->more;
		cache->nr--;
	}
	return desc;
}

void kmmu_rmap_cache_free(struct kmmu_rmap_cache *cache)
{
	struct kmmu_rmap_desc *desc;

	while ((desc = rmap_cache_pop(cache)))
		os_free(desc);
}

/*
 * Take the lock bit, waiting while someone else holds it.  Return: the
 * value without the lock bit, or 0 for an empty rmap, which is not locked
 * (a lockless reader has nothing to walk, and only writers, who exclude
 * each other with mmu_lock, ever fill an empty rmap).
 */
static unsigned long __rmap_lock(struct kmmu_rmap_head *head, bool wait)
{
	long old = atomic_long_read(&head->val);

	do {
		while (old & KMMU_RMAP_LOCKED) {
			if (!wait)
				return KMMU_RMAP_LOCKED;
			cpu_relax();
			old = atomic_long_read(&head->val);
		}
		if (!old)
			return 0;
		/*
		 * Acquire: nothing the holder reads or writes in the rmap moves
		 * before the lock; pairs with the release in __rmap_unlock().
		 */
	} while (!atomic_long_try_cmpxchg_acquire(&head->val, &old, old | KMMU_RMAP_LOCKED));
	return old;
}

static void __rmap_unlock(struct kmmu_rmap_head *head, unsigned long val)
{
	WARN_ON_ONCE(val & KMMU_RMAP_LOCKED);
	/* Release: every access to the rmap is done before the next holder's. */
	atomic_long_set_release(&head->val, val);
}

static unsigned long rmap_lock(struct kmmu *kmmu, struct kmmu_rmap_head *head)
{
	lockdep_assert_held_write(&kmmu->mmu_lock);
	return __rmap_lock(head, true);
}

/* Unlock with @val, the rmap's new value (0 leaves it empty and unlocked). */
static void rmap_unlock(struct kmmu *kmmu, struct kmmu_rmap_head *head, unsigned long val)
{
	lockdep_assert_held_write(&kmmu->mmu_lock);
	__rmap_unlock(head, val);
}

/**
 * kmmu_rmap_lock_readonly() - lock an rmap to walk it without mmu_lock
 * @head: the rmap
 *
 * Spins while a writer (or another reader) holds the lock; preemption is
 * off until the unlock, as the holder of a spinlock has it.
 *
 * Return: the rmap's value, to walk with for_each_rmap_spte() and to give
 * back to kmmu_rmap_unlock_readonly(); 0 for an empty rmap, which needs
 * no walk (the unlock is then a no-op).
 */
unsigned long kmmu_rmap_lock_readonly(struct kmmu_rmap_head *head)
{
	unsigned long val;

	if (kmmu_mutant(RMAP_READER_NO_LOCK))
		return atomic_long_read(&head->val) & ~KMMU_RMAP_LOCKED;
	preempt_disable();
	val = __rmap_lock(head, true);
	if (!val)
		preempt_enable();
	return val;
}

void kmmu_rmap_unlock_readonly(struct kmmu_rmap_head *head, unsigned long val)
{
	if (!val || kmmu_mutant(RMAP_READER_NO_LOCK))
		return;
	/* Readers may not change the rmap. */
	WARN_ON_ONCE((atomic_long_read(&head->val) & ~KMMU_RMAP_LOCKED) != val);
	__rmap_unlock(head, val);
	preempt_enable();
}

static struct kmmu_rmap_desc *val_to_desc(unsigned long val)
{
	return (struct kmmu_rmap_desc *)(val & ~KMMU_RMAP_MANY);
}

static struct kmmu_rmap_desc *rmap_new_desc(struct kmmu_rmap_cache *cache)
{
	struct kmmu_rmap_desc *desc;

	/* The caller tops the cache up before it takes mmu_lock. */
	desc = rmap_cache_pop(cache);
	if (desc)
		memset(desc, 0, sizeof(*desc));
	return desc;
}

/**
 * kmmu_rmap_add() - record that @sptep maps the rmap's gfn
 * @kmmu: the VM, mmu_lock held for write
 * @head: the rmap
 * @sptep: the shadow SPTE, not in the rmap yet
 * @cache: descriptors for the add (one is enough)
 *
 * Return: how many SPTEs the rmap held before, or -ENOMEM when a
 * descriptor was needed and @cache had none (the rmap is unchanged).
 */
int kmmu_rmap_add(struct kmmu *kmmu, struct kmmu_rmap_head *head, u64 *sptep,
		  struct kmmu_rmap_cache *cache)
{
	unsigned long old = rmap_lock(kmmu, head), new;
	struct kmmu_rmap_desc *desc, *first;
	int count = 0;

	if (!old) {
		new = (unsigned long)sptep;
	} else if (!(old & KMMU_RMAP_MANY)) {
		desc = rmap_new_desc(cache);
		if (!desc) {
			rmap_unlock(kmmu, head, old);
			return -ENOMEM;
		}
		desc->sptes[0] = (u64 *)old;
		desc->sptes[1] = sptep;
		desc->count = 2;
		new = (unsigned long)desc | KMMU_RMAP_MANY;
		count = 1;
	} else {
		first = val_to_desc(old);
		count = first->tail_count + first->count;
		new = old;
		if (first->count == KMMU_RMAP_DESC_SPTES) {
			desc = rmap_new_desc(cache);
			if (!desc) {
				rmap_unlock(kmmu, head, old);
				return -ENOMEM;
			}
			desc->more = first;
			desc->tail_count = count;
			first = desc;
			new = (unsigned long)desc | KMMU_RMAP_MANY;
		}
		first->sptes[first->count++] = sptep;
	}
	rmap_unlock(kmmu, head, new);
	return count;
}

/*
 * Remove entry @i of @desc: the last SPTE of the first descriptor fills
 * the hole, and a first descriptor left empty goes.  Return: the rmap's
 * new value; the descriptor to free, if any, in *@gone.
 */
static unsigned long rmap_desc_remove(unsigned long val, struct kmmu_rmap_desc *desc,
				      unsigned int i,
				      struct kmmu_rmap_desc **gone)
{
	struct kmmu_rmap_desc *first = val_to_desc(val);

	desc->sptes[i] = first->sptes[first->count - 1];
	first->sptes[--first->count] = NULL;
	*gone = NULL;
	if (first->count)
		return val;
	*gone = first;
	if (!first->more)
		return 0;
	return (unsigned long)first->more | KMMU_RMAP_MANY;
}

/**
 * kmmu_rmap_remove() - forget that @sptep maps the rmap's gfn
 * @kmmu: the VM, mmu_lock held for write
 * @head: the rmap
 * @sptep: the shadow SPTE
 *
 * Return: true if it was there (a missing one is kmmu's bug: WARNs).
 */
bool kmmu_rmap_remove(struct kmmu *kmmu, struct kmmu_rmap_head *head, u64 *sptep)
{
	unsigned long old = rmap_lock(kmmu, head), new = old;
	struct kmmu_rmap_desc *desc, *gone = NULL;
	bool found = false;
	unsigned int i;

	if (old && !(old & KMMU_RMAP_MANY)) {
		found = (u64 *)old == sptep;
		new = found ? 0 : old;
	} else if (old) {
		for (desc = val_to_desc(old); desc && !found; desc = desc->more) {
			for (i = 0; i < desc->count; i++) {
				if (desc->sptes[i] != sptep)
					continue;
				new = rmap_desc_remove(old, desc, i, &gone);
				found = true;
				break;
			}
		}
	}
	/* An rmap of one descriptor holding one SPTE goes back to the short form. */
	if (new & KMMU_RMAP_MANY && !val_to_desc(new)->more && val_to_desc(new)->count == 1 &&
	    !kmmu_mutant(RMAP_KEEP_SINGLE_DESC)) {
		gone = val_to_desc(new);
		new = (unsigned long)gone->sptes[0];
	}
	rmap_unlock(kmmu, head, new);
	/* Unlinked under the lock: no reader can reach it now. */
	if (gone)
		os_free(gone);
	WARN_ON_ONCE(!found);
	return found;
}

/* For writers and tests: the SPTEs in the rmap. */
unsigned long kmmu_rmap_count(struct kmmu *kmmu, struct kmmu_rmap_head *head)
{
	unsigned long val = atomic_long_read(&head->val) & ~KMMU_RMAP_LOCKED;

	lockdep_assert_held_write(&kmmu->mmu_lock);
	if (!val)
		return 0;
	if (!(val & KMMU_RMAP_MANY))
		return 1;
	return val_to_desc(val)->count + val_to_desc(val)->tail_count;
}

/*
 * For writers: the rmap's value, to walk it with for_each_rmap_spte().
 * Lockless readers never change an rmap, so a writer reads it as it is,
 * whether or not one of them holds the lock.
 */
unsigned long kmmu_rmap_peek(struct kmmu *kmmu, struct kmmu_rmap_head *head)
{
	lockdep_assert_held_write(&kmmu->mmu_lock);
	return atomic_long_read(&head->val) & ~KMMU_RMAP_LOCKED;
}

u64 *kmmu_rmap_iter_first(unsigned long val, struct kmmu_rmap_iter *iter)
{
	iter->desc = NULL;
	iter->pos = 0;
	iter->single = NULL;
	if (!val)
		return NULL;
	if (!(val & KMMU_RMAP_MANY)) {
		iter->single = (u64 *)val;
		return iter->single;
	}
	iter->desc = val_to_desc(val);
	return iter->desc->sptes[0];
}

u64 *kmmu_rmap_iter_next(struct kmmu_rmap_iter *iter)
{
	if (!iter->desc)
		return NULL;
	if (++iter->pos < iter->desc->count)
		return iter->desc->sptes[iter->pos];
	iter->desc = iter->desc->more;
	iter->pos = 0;
	return iter->desc ? iter->desc->sptes[0] : NULL;
}

/* Clear A (or access-track) with a cmpxchg: the CPU may set D meanwhile. */
static void rmap_age_spte(const struct kmmu_spte_fmt *f, u64 *sptep, u64 spte)
{
	u64 new;

	do {
		if (!is_shadow_present_spte(spte))
			return;
		new = mark_spte_for_access_track(f, spte);
		if (new == spte)
			return;
	} while (!try_cmpxchg64(sptep, &spte, new));
}

/*
 * Age the only SPTE of an rmap whose value was @val, without the lock bit;
 * RCU held.  The SPTE's table is freed a grace period after it is zapped,
 * so the SPTE can be read even if it left the rmap since @val was read.
 * A writer clears an SPTE before it takes it out of its rmap, and puts it
 * in before it sets it (with a release), so an SPTE read before the head
 * is seen to be @val again either mapped this gfn then or is not present;
 * it is changed only by a cmpxchg from that value.  @accessed is
 * f->accessed, kept in a register by the caller's loop (see spte_aged()).
 *
 * Return: false if the head is no longer @val (the SPTE left, another came,
 * or a writer holds the lock), for the caller to look again.
 */
static __always_inline bool rmap_age_single(struct kmmu *kmmu, struct kmmu_rmap_head *head,
					    unsigned long val, u64 accessed, bool test_only,
					    struct kmmu_rmap_age_result *res)
{
	u64 *sptep = (u64 *)val;
	u64 spte, new;

	spte = READ_ONCE(*sptep);
	for (;;) {
		os_race_point(kmmu, KMMU_RACE_RMAP_AGE_READ, 0);
		/*
		 * The head after the SPTE: pairs with the release of the
		 * writer's unlock, which comes before it sets an SPTE again.
		 */
		smp_rmb();
		if ((unsigned long)atomic_long_read(&head->val) != val &&
		    !kmmu_mutant(RMAP_SINGLE_NO_RECHECK))
			return false;
		if (!is_shadow_present_spte(spte))
			return true;
		if (!spte_young(&kmmu->fmt, accessed, spte)) {
			res->old++;
			return true;
		}
		new = spte_aged(&kmmu->fmt, accessed, spte);
		if (test_only || new == spte || try_cmpxchg64(sptep, &spte, new)) {
			res->young++;
			return true;
		}
		/* Changed meanwhile (the CPU set D): @spte is its new value. */
	}
}

/* The rest of kmmu_rmap_age_range(): a list, or a head that kept changing. */
static void rmap_age_slow(struct kmmu *kmmu, struct kmmu_rmap_head *head, bool test_only,
			  bool fast_only, struct kmmu_rmap_age_result *res)
{
	const struct kmmu_spte_fmt *f = &kmmu->fmt;
	struct kmmu_rmap_iter iter;
	unsigned long val;
	u64 *sptep, spte;

	for (;;) {
		/* Acquire: see kmmu_rmap_age_range(). */
		val = atomic_long_read_acquire(&head->val);
		if (!val)
			return;
		if (val & (KMMU_RMAP_LOCKED | KMMU_RMAP_MANY))
			break;
		if (rmap_age_single(kmmu, head, val, f->accessed, test_only, res))
			return;
	}
	if (fast_only) {
		preempt_disable();
		val = __rmap_lock(head, false);
		if (val == KMMU_RMAP_LOCKED)
			res->incomplete = true;
		if (!val || val == KMMU_RMAP_LOCKED) {
			preempt_enable();
			return;
		}
	} else {
		val = kmmu_rmap_lock_readonly(head);
	}
	for_each_rmap_spte(val, &iter, sptep) {
		spte = READ_ONCE(*sptep);
		if (!is_shadow_present_spte(spte))
			continue;
		if (!is_accessed_spte(f, spte)) {
			res->old++;
			continue;
		}
		res->young++;
		if (!test_only)
			rmap_age_spte(f, sptep, spte);
	}
	if (fast_only) {
		__rmap_unlock(head, val);
		preempt_enable();
	} else {
		kmmu_rmap_unlock_readonly(head, val);
	}
}

/**
 * kmmu_rmap_age_range() - test, and unless @test_only clear, the accessed
 * state of every SPTE of @n consecutive rmaps, without mmu_lock
 * @kmmu: the VM
 * @heads: the first rmap
 * @n: rmaps
 * @test_only: count only
 * @fast_only: never wait for an rmap's lock; a locked rmap is skipped and
 *	reported in res->incomplete
 * @res: counts added to
 *
 * Callable with or without mmu_lock.  An rmap of one SPTE is aged without
 * its lock (see rmap_age_single()), so readers wait only while a writer
 * holds it; a list is walked under the lock, which keeps its descriptors.
 * Each SPTE changes only by cmpxchg; one not present is not counted.  An
 * aging pass spends its time here: the loop reads the next head before it
 * ages this one's SPTE, whose cmpxchg would hold the load back.
 */
void kmmu_rmap_age_range(struct kmmu *kmmu, struct kmmu_rmap_head *heads, unsigned long n,
			 bool test_only, bool fast_only, struct kmmu_rmap_age_result *res)
{
	const u64 accessed = kmmu->fmt.accessed;
	unsigned long i, val, next;

	if (!n)
		return;
	rcu_read_lock();
	/*
	 * Acquire: the SPTE a head points to, and its table, were set up
	 * before the release of the unlock that put it there.
	 */
	next = atomic_long_read_acquire(&heads[0].val);
	for (i = 0; i < n; i++) {
		val = next;
		if (i + 1 < n)
			next = atomic_long_read_acquire(&heads[i + 1].val);
		if (!val)
			continue;
		if (!(val & (KMMU_RMAP_LOCKED | KMMU_RMAP_MANY)) &&
		    rmap_age_single(kmmu, &heads[i], val, accessed, test_only, res))
			continue;
		rmap_age_slow(kmmu, &heads[i], test_only, fast_only, res);
	}
	rcu_read_unlock();
}
