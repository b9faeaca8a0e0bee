// SPDX-License-Identifier: GPL-2.0
/*
 * dirty_log: the flow and names of KVM's dirty_log_perf_test on kmmu.
 * Populate guest memory, enable dirty logging (with eager splitting of
 * huge mappings), then per iteration dirty memory from the vCPUs and get
 * and clear the log; finally disable logging (with huge-page recovery).
 * Every host-side step is reported per 4 KiB page next to the same-run
 * floor: one locked read-modify-write per 8-byte entry, entries packed 512
 * to a page like SPTEs.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kmmu_lib.h"

#define GUEST_GPA	(1ULL << 32)
#define PAGE		4096ULL
#define MAX_REPS	100

struct params {
	struct bench_common cm;
	int iterations;
	int reps;
	int write_percent;
	bool manual;
	uint32_t mode;
	uint64_t split_chunk;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-i iterations] [-r reps]\n"
	       "          [-f fraction] [-g] [-m wrprot|dbit] [-e chunk] [-F format]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb,\n"
	       "     anonymous_hugetlb_1gb, shmem (default: anonymous_hugetlb_1gb)\n");
	printf(" -i: dirty/get/clear iterations per run (default: 3)\n");
	printf(" -r: runs, each in a fresh VM; medians are reported (default: 3)\n");
	printf(" -f: write 1 page in f, read the others (default: 1: write every page)\n");
	printf(" -g: do not enable manual protection (GET protects; no CLEAR) (default: manual)\n");
	printf(" -m: tracking mode: wrprot or dbit (default: wrprot)\n");
	printf(" -e: eager split chunk size with k/m/g suffixes, 0 = split on fault (default: 64m)\n");
	printf("\nBackend: KMMU_BACKEND=dev|user (default: dev when /dev/kmmu exists).\n");
}

static int parse_args(int argc, char **argv, struct params *p)
{
	int c, f, ret;

	while ((c = getopt(argc, argv, "h" BENCH_COMMON_OPTS "i:r:f:gm:e:")) != -1) {
		ret = bench_parse_common(c, optarg, &p->cm);
		if (ret < 0)
			goto bad;
		if (ret)
			continue;
		switch (c) {
		case 'i':
			if (bench_parse_int(optarg, 1, 1000, &p->iterations))
				goto bad;
			break;
		case 'r':
			if (bench_parse_int(optarg, 1, MAX_REPS, &p->reps))
				goto bad;
			break;
		case 'f':
			if (bench_parse_int(optarg, 1, 100, &f))
				goto bad;
			p->write_percent = 100 / f;
			break;
		case 'g':
			p->manual = false;
			break;
		case 'm':
			if (!strcmp(optarg, "wrprot"))
				p->mode = KMMU_DIRTY_LOG_MODE_WRPROT;
			else if (!strcmp(optarg, "dbit"))
				p->mode = KMMU_DIRTY_LOG_MODE_DBIT;
			else
				goto bad;
			break;
		case 'e':
			if (!strcmp(optarg, "0"))
				p->split_chunk = 0;
			else if (bench_parse_size(optarg, &p->split_chunk))
				goto bad;
			break;
		case 'h':
			help(argv[0]);
			exit(0);
		default:
			goto usage;
		}
	}
	if (optind == argc)
		return 0;
bad:
	fprintf(stderr, "%s: bad argument%s%s\n", argv[0], optarg ? ": " : "", optarg ?: "");
usage:
	help(argv[0]);
	return -EINVAL;
}

struct vcpu_job {
	struct kmmu_vcpu *vcpu;
	struct kmmu_workload wl;
	int err;
};

static void *vcpu_thread(void *arg)
{
	struct vcpu_job *j = arg;
	struct kmmu_run run;

	j->err = kmmu_vcpu_run_workload(j->vcpu, &j->wl, &run);
	if (!j->err && run.exit_reason != KMMU_EXIT_DONE)
		j->err = -EIO;
	return NULL;
}

/* One pass of every vCPU over its range; returns the wall time in ns. */
static uint64_t run_vcpus(struct vcpu_job *jobs, int n, int write_percent, uint64_t value)
{
	pthread_t t[KMMU_LIB_MAX_VCPUS];
	uint64_t t0 = kmmu_now_ns();
	int i;

	for (i = 0; i < n; i++) {
		jobs[i].wl.write_percent = write_percent;
		jobs[i].wl.value = value;
		jobs[i].wl.seed = value;
		pthread_create(&t[i], NULL, vcpu_thread, &jobs[i]);
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < n; i++) {
		if (jobs[i].err) {
			fprintf(stderr, "dirty_log: vCPU %d: %s\n", i, strerror(-jobs[i].err));
			exit(1);
		}
	}
	return kmmu_now_ns() - t0;
}

/* The figures of one run, in ns for the whole slot. */
struct run_result {
	uint64_t populate, enable, dirty, get, clear, disable;
};

static void must(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "dirty_log: %s: %s\n", what, strerror(-ret));
		exit(1);
	}
}

static void one_run(const struct params *p, int rep, struct run_result *r)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	uint64_t total = p->cm.bytes_per_vcpu * p->cm.vcpus, pages = total / PAGE;
	struct vcpu_job jobs[KMMU_LIB_MAX_VCPUS] = {};
	uint64_t *bitmap = calloc(pages / 64 + 1, sizeof(uint64_t)), t0, ns;
	struct kmmu_vm_stats st;
	struct kmmu_mem mem;
	struct kmmu_vm *vm;
	int i, it;

	must(kmmu_mem_alloc(&mem, p->cm.backing, total), "backing");
	must(kmmu_vm_create(&cfg, &vm), "VM");
	if (p->manual)
		must(kmmu_vm_enable_cap(vm, KMMU_CAP_MANUAL_DIRTY_LOG_PROTECT,
					KMMU_DIRTY_LOG_MANUAL_PROTECT_ENABLE), "manual protect");
	must(kmmu_vm_enable_cap(vm, KMMU_CAP_DIRTY_LOG_MODE, p->mode), "mode");
	must(kmmu_vm_enable_cap(vm, KMMU_CAP_EAGER_SPLIT_CHUNK_SIZE, p->split_chunk), "chunk");
	must(kmmu_vm_set_memslot(vm, 0, 0, GUEST_GPA, total, mem.addr), "memslot");
	for (i = 0; i < p->cm.vcpus; i++) {
		must(kmmu_vcpu_create(vm, i, &jobs[i].vcpu), "vCPU");
		jobs[i].wl = (struct kmmu_workload){
			.gpa = GUEST_GPA + i * p->cm.bytes_per_vcpu,
			.size = p->cm.bytes_per_vcpu,
			.iterations = 1,
			.pattern = KMMU_PATTERN_SEQUENTIAL,
		};
	}

	r->populate = run_vcpus(jobs, p->cm.vcpus, 100, 1);
	kmmu_vm_stats(vm, &st);
	printf("run %d: populated: %llu 4K, %llu 2M, %llu 1G leaves in %.1f ms\n", rep,
	       st.pages_4k, st.pages_2m, st.pages_1g, r->populate / 1e6);

	t0 = kmmu_now_ns();
	must(kmmu_vm_set_memslot(vm, 0, KMMU_MEM_LOG_DIRTY_PAGES, GUEST_GPA, total, mem.addr),
	     "enable logging");
	r->enable = kmmu_now_ns() - t0;
	kmmu_vm_stats(vm, &st);
	printf("run %d: enabling dirty logging: %.3f ms (%llu splits)\n", rep, r->enable / 1e6,
	       st.splits);

	r->dirty = r->get = r->clear = 0;
	for (it = 1; it <= p->iterations; it++) {
		ns = run_vcpus(jobs, p->cm.vcpus, p->write_percent, it + 1);
		r->dirty += ns;
		t0 = kmmu_now_ns();
		must(kmmu_vm_get_dirty_log(vm, 0, bitmap), "get dirty log");
		r->get += kmmu_now_ns() - t0;
		printf("run %d iteration %d: dirty memory %.3f ms, get dirty log %.3f ms", rep, it,
		       ns / 1e6, (double)(kmmu_now_ns() - t0) / 1e6);
		if (p->manual) {
			t0 = kmmu_now_ns();
			must(kmmu_vm_clear_dirty_log(vm, 0, 0, pages, bitmap), "clear dirty log");
			ns = kmmu_now_ns() - t0;
			r->clear += ns;
			printf(", clear dirty log %.3f ms", ns / 1e6);
		}
		printf("\n");
	}
	r->dirty /= p->iterations;
	r->get /= p->iterations;
	r->clear /= p->iterations;

	t0 = kmmu_now_ns();
	must(kmmu_vm_set_memslot(vm, 0, 0, GUEST_GPA, total, mem.addr), "disable logging");
	r->disable = kmmu_now_ns() - t0;
	kmmu_vm_stats(vm, &st);
	printf("run %d: disabling dirty logging: %.3f ms (%llu recoveries, %llu zaps; now %llu 4K, "
	       "%llu 2M, %llu 1G)\n", rep, r->disable / 1e6, st.recoveries, st.collapsible_zaps,
	       st.pages_4k, st.pages_2m, st.pages_1g);

	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
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
	};
	uint64_t en[MAX_REPS], dis[MAX_REPS], get[MAX_REPS], clr[MAX_REPS], dirty[MAX_REPS];
	struct bench_results *res = bench_results_new("dirty_log");
	double floor_ns, floor_samples[BENCH_FLOOR_RUNS];
	struct run_result r;
	uint64_t pages;
	int i;

	if (parse_args(argc, argv, &p))
		return 2;
	if (!kmmu_backend_available()) {
		fprintf(stderr, "dirty_log: backend %s not available\n", kmmu_backend_name());
		return 1;
	}
	pages = p.cm.bytes_per_vcpu * p.cm.vcpus / PAGE;
	printf("dirty_log: backend=%s backing=%s vcpus=%d bytes/vcpu=%llu mode=%s manual=%d "
	       "split_chunk=%llu iterations=%d runs=%d\n", kmmu_backend_name(),
	       kmmu_backing_name(p.cm.backing), p.cm.vcpus, (unsigned long long)p.cm.bytes_per_vcpu,
	       p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot", p.manual,
	       (unsigned long long)p.split_chunk, p.iterations, p.reps);
	if (!res)
		return 1;
	bench_common_params(res, &p.cm);
	bench_results_param_int(res, "iterations", p.iterations);
	bench_results_param_int(res, "write_percent", p.write_percent);
	bench_results_param_str(res, "manual_protect", p.manual ? "yes" : "no");
	bench_results_param_str(res, "mode", p.mode == KMMU_DIRTY_LOG_MODE_DBIT ? "dbit" : "wrprot");
	bench_results_param_int(res, "split_chunk", p.split_chunk);
	floor_ns = bench_floor_locked_rmw(pages, floor_samples);
	bench_results_floor(res, "locked_rmw", pages, floor_samples, BENCH_FLOOR_RUNS);
	printf("floor: one locked RMW per 8-byte entry, %llu entries in 4 KiB pages: %.2f ns/entry\n",
	       (unsigned long long)pages, floor_ns);

	for (i = 0; i < p.reps; i++) {
		one_run(&p, i + 1, &r);
		en[i] = r.enable;
		dis[i] = r.disable;
		get[i] = r.get;
		clr[i] = r.clear;
		dirty[i] = r.dirty;
		fflush(stdout);
	}

	bench_add_per_page(res, "enable_logging", en, p.reps, pages, "locked_rmw");
	bench_add_per_page(res, "get_dirty_log", get, p.reps, pages, "locked_rmw");
	if (p.manual)
		bench_add_per_page(res, "clear_dirty_log", clr, p.reps, pages, "locked_rmw");
	bench_add_per_page(res, "disable_logging", dis, p.reps, pages, "locked_rmw");
	bench_add_per_page(res, "dirty_memory", dirty, p.reps, pages, "locked_rmw");

	printf("\nsummary (median of %d runs, per 4 KiB page of guest memory):\n", p.reps);
	report("enable logging (+ split)", en, p.reps, pages, floor_ns);
	report("get dirty log", get, p.reps, pages, floor_ns);
	if (p.manual)
		report("clear dirty log", clr, p.reps, pages, floor_ns);
	report("disable logging (+ recovery)", dis, p.reps, pages, floor_ns);
	report("dirty memory (vCPU pass)", dirty, p.reps, pages, floor_ns);
	printf("  floor: %.2f ns/entry\n", floor_ns);
	return bench_results_finish(res, &p.cm);
}
