// SPDX-License-Identifier: GPL-2.0
/*
 * aging: what an aging pass costs, locked (mmu_lock for write) and lockless
 * (RCU and a cmpxchg per SPTE), and what it costs the vCPUs running
 * meanwhile, in the manner of KVM's access_tracking_perf_test.  The pass is
 * reported per 4 KiB page next to the same-run floor, one locked
 * read-modify-write per 8-byte entry.
 *
 * The vCPUs' side: their memory is zapped and they fault it all back in
 * (a write per 4 KiB page, one fault each) while a thread ages the whole
 * slot every -i microseconds -- nothing, the locked path, or the lockless
 * one.  Faults
 * take mmu_lock for read, so a locked pass holds them up where a lockless
 * one does not.  The three are run in turn, each repetition in a new
 * order, and the medians are compared.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "kmmu_lib.h"

#define GUEST_GPA	(1ULL << 32)
#define PAGE		4096ULL
#define MAX_REPS	100

struct params {
	struct bench_common cm;
	int reps;
	int interval_us;
	uint32_t flags;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-i usecs]\n"
	       "          [-F format] [-A]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing (default: anonymous, so every SPTE is a 4K leaf)\n");
	printf(" -r: repetitions of each timed figure; the median is reported (default: 5)\n");
	printf(" -i: pause between aging passes while the vCPUs fault (default: 1000)\n");
	printf(" -A: A/D bits off (EPT only): aging marks SPTEs for access tracking\n");
	printf("\nBackend: KMMU_BACKEND=dev|user (default: dev when /dev/kmmu exists).\n");
}

static int parse_args(int argc, char **argv, struct params *p)
{
	int c, ret;

	while ((c = getopt(argc, argv, "h" BENCH_COMMON_OPTS "r:i:A")) != -1) {
		ret = bench_parse_common(c, optarg, &p->cm);
		if (ret < 0)
			goto bad;
		if (ret)
			continue;
		switch (c) {
		case 'r':
			if (bench_parse_int(optarg, 1, MAX_REPS, &p->reps))
				goto bad;
			break;
		case 'i':
			if (bench_parse_int(optarg, 0, 10000000, &p->interval_us))
				goto bad;
			break;
		case 'A':
			p->flags |= KMMU_VM_AD_DISABLED;
			p->cm.format = KMMU_SPTE_FORMAT_EPT;
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

static void must(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "aging: %s: %s\n", what, strerror(-ret));
		exit(1);
	}
}

struct vcpu_job {
	struct kmmu_vcpu *vcpu;
	struct kmmu_workload wl;
	uint64_t ns;
	int err;
};

static void *vcpu_thread(void *arg)
{
	struct vcpu_job *j = arg;
	struct kmmu_run run;
	uint64_t t0 = kmmu_now_ns();

	j->err = kmmu_vcpu_run_workload(j->vcpu, &j->wl, &run);
	if (!j->err && run.exit_reason != KMMU_EXIT_DONE)
		j->err = -EIO;
	j->ns = kmmu_now_ns() - t0;
	return NULL;
}

/* Run every vCPU's workload to the end; the slowest vCPU's time, in ns. */
static uint64_t run_vcpus(struct vcpu_job *jobs, int n)
{
	pthread_t t[KMMU_LIB_MAX_VCPUS];
	uint64_t ns = 0;
	int i;

	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, vcpu_thread, &jobs[i]);
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		must(jobs[i].err, "vCPU");
		ns = jobs[i].ns > ns ? jobs[i].ns : ns;
	}
	return ns;
}

struct ager {
	struct kmmu_vm *vm;
	uint64_t size;
	unsigned int interval_us;
	volatile int stop;
	uint64_t passes;
};

/* An aging pass, then a pause, as the host's reclaim would do them. */
static void *ager_thread(void *arg)
{
	struct ager *a = arg;

	while (!a->stop) {
		must(kmmu_vm_age(a->vm, GUEST_GPA, a->size, 0, 0, NULL, NULL), "age");
		a->passes++;
		usleep(a->interval_us);
	}
	return NULL;
}

/*
 * Pages per second the vCPUs fault back in while @path aging (-1: none)
 * runs beside them; the aging passes done meanwhile in *@passes.
 */
static double fault_in_rate(struct kmmu_vm *vm, struct vcpu_job *jobs, int n, uint64_t size,
			    int path, unsigned int interval_us, uint64_t *passes)
{
	struct ager a = { .vm = vm, .size = size, .interval_us = interval_us };
	pthread_t t;
	uint64_t ns;

	must(kmmu_vm_zap(vm, GUEST_GPA, size, 0, 0), "zap");
	if (path >= 0) {
		must(kmmu_vm_enable_cap(vm, KMMU_CAP_LOCKLESS_AGING, path), "aging path");
		pthread_create(&t, NULL, ager_thread, &a);
	}
	ns = run_vcpus(jobs, n);
	if (path >= 0) {
		a.stop = 1;
		pthread_join(t, NULL);
	}
	*passes = a.passes;
	return (double)(size / PAGE) / (ns / 1e9);
}

int main(int argc, char **argv)
{
	struct params p = {
		.cm = {
			.vcpus = 1,
			.bytes_per_vcpu = 1ULL << 30,
			.backing = KMMU_BACKING_ANON,
			.format = KMMU_SPTE_FORMAT_DEFAULT,
		},
		.reps = 5,
		.interval_us = 1000,
	};
	struct vcpu_job jobs[KMMU_LIB_MAX_VCPUS] = {};
	uint64_t total, pages, ns[2][MAX_REPS], young, old, passes[3] = {};
	double floor_ns, rate[3][MAX_REPS], floor_samples[BENCH_FLOOR_RUNS];
	struct bench_results *res = bench_results_new("aging");
	static const char * const rate_metric[] = {
		"fault_in_no_aging", "fault_in_locked_aging", "fault_in_lockless_aging"
	};
	static const char * const path_name[] = { "no aging", "locked aging", "lockless aging" };
	struct kmmu_vm_config cfg;
	struct kmmu_mem mem;
	struct kmmu_vm *vm;
	int i, path, r;

	if (parse_args(argc, argv, &p))
		return 2;
	if (!kmmu_backend_available()) {
		fprintf(stderr, "aging: backend %s not available\n", kmmu_backend_name());
		return 1;
	}
	total = p.cm.bytes_per_vcpu * p.cm.vcpus;
	pages = total / PAGE;
	cfg = (struct kmmu_vm_config){ .spte_format = p.cm.format, .flags = p.flags };
	printf("aging: backend=%s backing=%s vcpus=%d bytes/vcpu=%llu passes=%d%s\n",
	       kmmu_backend_name(), kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu, p.reps,
	       p.flags & KMMU_VM_AD_DISABLED ? " A/D off" : "");
	if (!res)
		return 1;
	bench_common_params(res, &p.cm);
	bench_results_param_str(res, "ad", p.flags & KMMU_VM_AD_DISABLED ? "off" : "on");
	floor_ns = bench_floor_locked_rmw(pages, floor_samples);
	bench_results_floor(res, "locked_rmw", pages, floor_samples, BENCH_FLOOR_RUNS);
	printf("floor: one locked RMW per 8-byte entry, %llu entries in 4 KiB pages: %.2f ns/entry\n",
	       (unsigned long long)pages, floor_ns);

	must(kmmu_mem_alloc(&mem, p.cm.backing, total), "backing");
	must(kmmu_vm_create(&cfg, &vm), "VM");
	must(kmmu_vm_set_memslot(vm, 0, 0, GUEST_GPA, total, mem.addr), "memslot");
	for (i = 0; i < p.cm.vcpus; i++) {
		must(kmmu_vcpu_create(vm, i, &jobs[i].vcpu), "vCPU");
		jobs[i].wl = (struct kmmu_workload){
			.gpa = GUEST_GPA + i * p.cm.bytes_per_vcpu,
			.size = p.cm.bytes_per_vcpu,
			.iterations = 1,
			.write_percent = 50,
			.pattern = KMMU_PATTERN_SEQUENTIAL,
		};
	}
	run_vcpus(jobs, p.cm.vcpus);

	/* Each timed pass finds every page young: the vCPUs touch all between passes. */
	for (path = 0; path < 2; path++) {
		must(kmmu_vm_enable_cap(vm, KMMU_CAP_LOCKLESS_AGING, path), "aging path");
		for (r = 0; r < p.reps; r++) {
			for (i = 0; i < p.cm.vcpus; i++)
				jobs[i].wl.pattern = KMMU_PATTERN_SEQUENTIAL;
			run_vcpus(jobs, p.cm.vcpus);
			ns[path][r] = kmmu_now_ns();
			must(kmmu_vm_age(vm, GUEST_GPA, total, 0, KMMU_AGE_FLUSH, &young, &old), "age");
			ns[path][r] = kmmu_now_ns() - ns[path][r];
			printf("%-8s pass %d: %8.3f ms, %llu young, %llu old, %.2f ns/4K\n",
			       path ? "lockless" : "locked", r + 1, ns[path][r] / 1e6,
			       (unsigned long long)young, (unsigned long long)old,
			       (double)ns[path][r] / pages);
		}
	}

	/* Each repetition starts with a different path, so none always goes first. */
	for (i = 0; i < p.cm.vcpus; i++)
		jobs[i].wl.write_percent = 100;
	for (r = 0; r < p.reps; r++) {
		for (i = 0; i < 3; i++) {
			uint64_t n;

			path = (r + i) % 3;
			rate[path][r] = fault_in_rate(vm, jobs, p.cm.vcpus, total, path - 1,
						       p.interval_us, &n);
			passes[path] += n;
			printf("fault-in %d, %-15s %10.0f pages/s (%llu aging passes meanwhile)\n",
			       r + 1, path_name[path], rate[path][r], (unsigned long long)n);
		}
	}

	bench_add_per_page(res, "aging_pass_locked", ns[0], p.reps, pages, "locked_rmw");
	bench_add_per_page(res, "aging_pass_lockless", ns[1], p.reps, pages, "locked_rmw");
	bench_results_param_int(res, "aging_interval_us", p.interval_us);
	for (path = 0; path < 3; path++)
		bench_results_add(res, rate_metric[path], "pages/s", false, rate[path], p.reps,
				  NULL);

	printf("\nsummary (median of %d passes, per 4 KiB page):\n", p.reps);
	printf("  aging pass, locked        %8.2f ns/4K  (%5.1fx floor)\n",
	       (double)bench_median(ns[0], p.reps) / pages,
	       (double)bench_median(ns[0], p.reps) / pages / floor_ns);
	printf("  aging pass, lockless      %8.2f ns/4K  (%5.1fx floor)\n",
	       (double)bench_median(ns[1], p.reps) / pages,
	       (double)bench_median(ns[1], p.reps) / pages / floor_ns);
	for (path = 0; path < 3; path++)
		printf("  vCPU fault-in, %-15s %10.0f pages/s  (%.2fx of no aging; %llu passes)\n",
		       path_name[path], bench_median_d(rate[path], p.reps),
		       bench_median_d(rate[path], p.reps) / bench_median_d(rate[0], p.reps),
		       (unsigned long long)passes[path]);
	printf("  floor: %.2f ns/entry\n", floor_ns);

	kmmu_vm_free(vm);
	kmmu_mem_free(&mem);
	return bench_results_finish(res, &p.cm);
}
