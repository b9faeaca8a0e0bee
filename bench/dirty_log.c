// SPDX-License-Identifier: GPL-2.0
/*
 * dirty_log: the flow and names of KVM's dirty_log_perf_test on kmmu.
 * Populate guest memory, enable dirty logging (with eager splitting of
 * huge mappings), then per iteration dirty memory from the vCPUs and get
 * and clear the log; finally disable logging (with huge-page recovery).
 * With -l ring the log is the per-vCPU dirty rings instead of the bitmap:
 * per iteration every vCPU's ring is collected (where the bitmap flow gets
 * the log) and the rings are reset (where it clears the log); a vCPU whose
 * ring fills while it runs collects it and resets the rings itself, and
 * goes on.  Every host-side step is reported per 4 KiB page next to the
 * same-run floor: one locked read-modify-write per 8-byte entry, entries
 * packed 512 to a page like SPTEs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define PAGE		BENCH_PAGE
#define MAX_REPS	100
/* KVM's dirty_log_test default, and the largest ring kmmu takes. */
#define RING_ENTRIES	65536

struct params {
	struct bench_common cm;
	int iterations;
	int reps;
	int write_percent;
	bool manual;
	bool initially_set;	/* -I: manual protection with KMMU_DIRTY_LOG_INITIALLY_SET */
	uint32_t mode;
	uint64_t split_chunk;
	bool ring;
	int ring_entries;
	bool ring_entries_set;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-i iterations] [-r reps]\n"
	       "          [-f fraction] [-g] [-I] [-m wrprot|dbit] [-e chunk] [-l bitmap|ring]\n"
	       "          [-R entries] [-F format] [-o results.json] [--pressure tool]\n\n",
	       name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb,\n"
	       "     anonymous_hugetlb_1gb, shmem, pfnmap (VM_PFNMAP memory; on dev from\n"
	       "     the kmmu_test module, at most 1020k in all) (default: anonymous_hugetlb_1gb)\n");
	printf(" -i: dirty/get/clear iterations per run (default: 3)\n");
	printf(" -r: runs, each in a fresh VM; medians are reported (default: 3)\n");
	printf(" -f: write 1 page in f, read the others (default: 1: write every page)\n");
	printf(" -g: do not enable manual protection (GET protects; no CLEAR); bitmap only\n"
	       "     (default: manual)\n");
	printf(" -I: manual protection with KMMU_DIRTY_LOG_INITIALLY_SET, as KVM's\n"
	       "     dirty_log_perf_test has it: enabling logging neither splits nor\n"
	       "     protects, the first clear does (default: without)\n");
	printf(" -m: tracking mode: wrprot or dbit (default: wrprot)\n");
	printf(" -e: eager split chunk size with k/m/g suffixes, 0 = split on fault (default: 64m)\n");
	printf(" -l: the log: bitmap (get and clear the bitmap) or ring (collect every vCPU's\n"
	       "     dirty ring and reset the rings) (default: bitmap)\n");
	printf(" -R: entries per vCPU's dirty ring, a power of two from 256 to %d; with -l ring\n"
	       "     (default: %d)\n", KMMU_DIRTY_RING_MAX_ENTRIES, RING_ENTRIES);
	printf(BENCH_BACKEND_HELP);
}

static int parse(int c, const char *arg, void *data)
{
	struct params *p = data;
	int f;

	switch (c) {
	case 'i':
		return bench_parse_int(arg, 1, 1000, &p->iterations);
	case 'r':
		return bench_parse_int(arg, 1, MAX_REPS, &p->reps);
	case 'f':
		if (bench_parse_int(arg, 1, 100, &f))
			return -EINVAL;
		p->write_percent = 100 / f;
		return 0;
	case 'g':
		p->manual = false;
		return 0;
	case 'I':
		p->initially_set = true;
		return 0;
	case 'm':
		return bench_parse_log_mode(arg, &p->mode);
	case 'e':
		if (!strcmp(arg, "0")) {
			p->split_chunk = 0;
			return 0;
		}
		return bench_parse_size(arg, &p->split_chunk);
	case 'l':
		if (!strcmp(arg, "ring"))
			p->ring = true;
		else if (!strcmp(arg, "bitmap"))
			p->ring = false;
		else
			return -EINVAL;
		return 0;
	case 'R':
		p->ring_entries_set = true;
		if (bench_parse_int(arg, 256, KMMU_DIRTY_RING_MAX_ENTRIES, &p->ring_entries) ||
		    (p->ring_entries & (p->ring_entries - 1)))
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

static const char *check(void *data)
{
	struct params *p = data;

	if (p->ring && !p->manual)
		return "-g is for the bitmap: rings are always collected and reset";
	if (p->initially_set && (!p->manual || p->ring))
		return "-I is for the bitmap with manual protection: not with -g or -l ring";
	if (!p->ring && p->ring_entries_set)
		return "-R is for -l ring";
	return NULL;
}

static const struct bench_args args = {
	.name = "dirty_log",
	.opts = "i:r:f:gIm:e:l:R:",
	.parse = parse,
	.check = check,
	.help = help,
};

/* The figures of one run, in ns for the whole slot. */
struct run_result {
	uint64_t populate, enable, dirty, get, clear, disable;
};

static void ignore_entry(void *arg, uint32_t slot, uint64_t offset)
{
}

/*
 * Collect every vCPU's ring, then reset the rings, each timed into @r
 * with what the vCPUs did at full rings while they dirtied memory.
 */
static void ring_iteration(const struct params *p, struct bench_vm *bv, int rep, int it,
			   uint64_t dirty_ns, struct run_result *r)
{
	uint64_t t0, collect_ns, reset_ns, full = 0, by_vcpus = 0, collected = 0;
	uint64_t vcpu_collect_ns = 0, vcpu_reset_ns = 0;
	long reset;
	int i;

	for (i = 0; i < bv->nr_vcpus; i++) {
		full += bv->vcpus[i].ring_full;
		by_vcpus += bv->vcpus[i].ring_collected;
		vcpu_collect_ns += bv->vcpus[i].ring_collect_ns;
		vcpu_reset_ns += bv->vcpus[i].ring_reset_ns;
	}
	t0 = kmmu_now_ns();
	for (i = 0; i < bv->nr_vcpus; i++)
		collected += kmmu_vcpu_collect_dirty_ring(bv->vcpus[i].vcpu, ignore_entry, NULL);
	collect_ns = kmmu_now_ns() - t0;
	t0 = kmmu_now_ns();
	reset = kmmu_vm_reset_dirty_rings(bv->vm);
	reset_ns = kmmu_now_ns() - t0;
	bench_must(reset < 0 ? reset : 0, "reset dirty rings");
	r->get += collect_ns + vcpu_collect_ns;
	r->clear += reset_ns + vcpu_reset_ns;
	printf("run %d iteration %d: dirty memory %.3f ms (%llu ring-full exits: %llu "
	       "entries collected in %.3f ms, reset in %.3f ms), collect dirty ring %.3f ms "
	       "(%llu entries), reset dirty rings %.3f ms (%ld entries)\n", rep, it,
	       dirty_ns / 1e6, (unsigned long long)full,
	       (unsigned long long)by_vcpus, vcpu_collect_ns / 1e6, vcpu_reset_ns / 1e6,
	       collect_ns / 1e6, (unsigned long long)collected, reset_ns / 1e6, reset);
}

/* Get the bitmap and, with manual protection, clear it, each timed into @r. */
static void bitmap_iteration(const struct params *p, struct bench_vm *bv, uint64_t *bitmap,
			     int rep, int it, uint64_t dirty_ns, struct run_result *r)
{
	uint64_t t0, ns;

	t0 = kmmu_now_ns();
	bench_must(kmmu_vm_get_dirty_log(bv->vm, 0, bitmap), "get dirty log");
	ns = kmmu_now_ns() - t0;
	r->get += ns;
	printf("run %d iteration %d: dirty memory %.3f ms, get dirty log %.3f ms", rep, it,
	       dirty_ns / 1e6, ns / 1e6);
	if (p->manual) {
		t0 = kmmu_now_ns();
		bench_must(kmmu_vm_clear_dirty_log(bv->vm, 0, 0, bv->size / PAGE, bitmap),
			   "clear dirty log");
		ns = kmmu_now_ns() - t0;
		r->clear += ns;
		printf(", clear dirty log %.3f ms", ns / 1e6);
	}
	printf("\n");
}

static void one_run(const struct params *p, int rep, struct run_result *r)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	uint64_t total = p->cm.bytes_per_vcpu * p->cm.vcpus, pages = total / PAGE;
	uint64_t *bitmap = calloc(pages / 64 + 1, sizeof(uint64_t)), ns;
	struct kmmu_vm_stats st;
	struct bench_vm bv;
	int i, it;

	if (!bitmap)
		bench_must(-ENOMEM, "bitmap");
	bench_vm_create(&bv, p->cm.backing, total, &cfg);
	/* Rings come before the vCPUs, and take the place of manual protection. */
	if (p->ring)
		bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_DIRTY_LOG_RING,
					      p->ring_entries * sizeof(struct kmmu_dirty_gfn)),
			   "dirty ring");
	else if (p->manual)
		bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT,
					      KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
					      (p->initially_set ? KMMU_DIRTY_LOG_INITIALLY_SET : 0)),
			   "manual protect");
	bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_DIRTY_LOG_MODE, p->mode), "mode");
	bench_must(kmmu_vm_enable_cap(bv.vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, p->split_chunk),
		   "chunk");
	bench_vm_setup(&bv, p->cm.vcpus);

	r->populate = bench_vm_run(&bv);
	bench_vm_stats(&bv, &st);
	printf("run %d: populated: %llu 4K, %llu 2M, %llu 1G leaves in %.1f ms\n", rep,
	       st.pages_4k, st.pages_2m, st.pages_1g, r->populate / 1e6);

	r->enable = bench_vm_set_logging(&bv, true);
	bench_vm_stats(&bv, &st);
	printf("run %d: enabling dirty logging: %.3f ms (%llu splits)\n", rep, r->enable / 1e6,
	       st.splits);

	r->dirty = r->get = r->clear = 0;
	for (it = 1; it <= p->iterations; it++) {
		for (i = 0; i < bv.nr_vcpus; i++) {
			bv.vcpus[i].wl.write_percent = p->write_percent;
			bv.vcpus[i].wl.value = it + 1;
			bv.vcpus[i].wl.seed = it + 1;
		}
		ns = bench_vm_run(&bv);
		r->dirty += ns;
		if (p->ring)
			ring_iteration(p, &bv, rep, it, ns, r);
		else
			bitmap_iteration(p, &bv, bitmap, rep, it, ns, r);
	}
	r->dirty /= p->iterations;
	r->get /= p->iterations;
	r->clear /= p->iterations;

	r->disable = bench_vm_set_logging(&bv, false);
	bench_vm_stats(&bv, &st);
	printf("run %d: disabling dirty logging: %.3f ms (%llu recoveries, %llu zaps; now "
	       "%llu 4K, %llu 2M, %llu 1G)\n", rep, r->disable / 1e6, st.recoveries,
	       st.collapsible_zaps, st.pages_4k, st.pages_2m, st.pages_1g);

	bench_vm_free(&bv);
	free(bitmap);
}

static void report(const char *what, uint64_t *v, int n, uint64_t pages, double floor_ns)
{
	double per = (double)bench_median(v, n) / pages;

	printf("  %-28s %8.2f ns/4K  (%5.1fx floor)\n", what, per, per / floor_ns);
}

int main(int argc, char **argv)
{
	struct params p = {
		.cm = {
			.vcpus = 1,
			.bytes_per_vcpu = 1ULL << 30,
			.backing = KMMU_BACKING_HUGETLB_1G,
			.format = KMMU_SPTE_FORMAT_DEFAULT,
		},
		.iterations = 3,
		.reps = 3,
		.write_percent = 100,
		.manual = true,
		.mode = KMMU_DIRTY_LOG_MODE_WRPROT,
		.split_chunk = 64ULL << 20,
		.ring_entries = RING_ENTRIES,
	};
	uint64_t en[MAX_REPS], dis[MAX_REPS], get[MAX_REPS], clr[MAX_REPS], dirty[MAX_REPS];
	const char *get_name, *clear_name;
	struct bench_results *res;
	struct run_result r;
	uint64_t pages;
	double floor_ns;
	int i;

	if (bench_parse_args(argc, argv, &args, &p.cm, &p))
		return 2;
	if (bench_begin(&p.cm))
		return 1;
	res = bench_results_new("dirty_log");
	if (!res)
		return 1;
	pages = p.cm.bytes_per_vcpu * p.cm.vcpus / PAGE;
	printf("dirty_log: backend=%s backing=%s vcpus=%d bytes/vcpu=%llu mode=%s log=%s",
	       kmmu_backend_name(), kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu,
	       p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot", p.ring ? "ring" : "bitmap");
	if (p.ring)
		printf(" ring_entries=%d", p.ring_entries);
	else
		printf(" manual=%d initially_set=%d", p.manual, p.initially_set);
	printf(" split_chunk=%llu iterations=%d runs=%d\n", (unsigned long long)p.split_chunk,
	       p.iterations, p.reps);
	bench_common_params(res, &p.cm);
	bench_results_param_int(res, "iterations", p.iterations);
	bench_results_param_int(res, "write_percent", p.write_percent);
	bench_results_param_str(res, "log", p.ring ? "ring" : "bitmap");
	if (p.ring)
		bench_results_param_int(res, "ring_entries", p.ring_entries);
	else
		bench_results_param_str(res, "manual_protect", p.manual ? "yes" : "no");
	/* Only when on: the figures without it keep their series. */
	if (p.initially_set)
		bench_results_param_str(res, "initially_set", "yes");
	bench_results_param_str(res, "mode",
				p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot");
	bench_results_param_int(res, "split_chunk", p.split_chunk);
	floor_ns = bench_floor(res, BENCH_FLOOR_LOCKED_RMW, pages);

	/* Warm-up runs (-W) are run 0, not counted. */
	for (i = 0; i < p.cm.warmup; i++)
		one_run(&p, 0, &r);
	for (i = 0; i < p.reps; i++) {
		one_run(&p, i + 1, &r);
		en[i] = r.enable;
		dis[i] = r.disable;
		get[i] = r.get;
		clr[i] = r.clear;
		dirty[i] = r.dirty;
	}

	get_name = p.ring ? "collect_dirty_ring" : "get_dirty_log";
	clear_name = p.ring ? "reset_dirty_rings" : "clear_dirty_log";
	bench_add_per_page(res, "enable_logging", en, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);
	bench_add_per_page(res, get_name, get, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);
	if (p.ring || p.manual)
		bench_add_per_page(res, clear_name, clr, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);
	bench_add_per_page(res, "disable_logging", dis, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);
	bench_add_per_page(res, "dirty_memory", dirty, p.reps, pages, BENCH_FLOOR_LOCKED_RMW);

	printf("\nsummary (median of %d runs, per 4 KiB page of guest memory):\n", p.reps);
	report("enable logging (+ split)", en, p.reps, pages, floor_ns);
	report(p.ring ? "collect dirty rings" : "get dirty log", get, p.reps, pages, floor_ns);
	if (p.ring || p.manual)
		report(p.ring ? "reset dirty rings" : "clear dirty log", clr, p.reps, pages,
		       floor_ns);
	report("disable logging (+ recovery)", dis, p.reps, pages, floor_ns);
	report("dirty memory (vCPU pass)", dirty, p.reps, pages, floor_ns);
	printf("  floor: %.2f ns/entry\n", floor_ns);
	return bench_results_finish(res, &p.cm);
}
