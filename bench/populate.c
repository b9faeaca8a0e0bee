// SPDX-License-Identifier: GPL-2.0
/*
 * populate: how fast kmmu faults memory in.  Every vCPU writes one word per
 * 4 KiB page of its own range of a fresh VM, so every access is a TDP
 * fault that installs one 4K SPTE.  Reported per fault, with the backing
 * already faulted in on the host (the MMU's own cost) and without (plus the
 * host's page faults), next to a floor measured in the same run: one
 * cmpxchg per 8-byte entry over as many entries as faults, laid out 512 to
 * a 4 KiB page like SPTEs in page tables.  With --scaling it also runs 1
 * vCPU over the whole range and V vCPUs over disjoint parts of it, and
 * prints the throughput ratio: faults take mmu_lock for read only and
 * must not serialize.
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

struct params {
	struct bench_common cm;
	int reps;
	int prefault;		/* 1 = only prefaulted, 0 = only not, -1 = both */
	bool scaling;
};

static void help(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s backing] [-r reps] [-F format]\n"
	       "          [-p yes|no|both] [--scaling]\n\n", name);
	printf(BENCH_COMMON_HELP);
	printf(" -s: backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb,\n"
	       "     anonymous_hugetlb_1gb, shmem (default: anonymous)\n");
	printf(" -r: repetitions of each figure; the median is reported (default: 5)\n");
	printf(" -p: backing faulted in on the host before the run: yes, no or both (default: both)\n");
	printf(" --scaling: also run 1 vCPU over vcpus x bytes and report the throughput\n"
	       "     of -v vCPUs relative to it (default: off)\n");
	printf("\nBackend: KMMU_BACKEND=dev|user (default: dev when /dev/kmmu exists).\n");
}

static int parse_args(int argc, char **argv, struct params *p)
{
	static const struct option longopts[] = {
		{ "scaling", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, "h" BENCH_COMMON_OPTS "r:p:", longopts, NULL)) != -1) {
		ret = bench_parse_common(c, optarg, &p->cm);
		if (ret < 0)
			goto bad;
		if (ret)
			continue;
		switch (c) {
		case 'r':
			if (bench_parse_int(optarg, 1, 1000, &p->reps))
				goto bad;
			break;
		case 'p':
			if (!strcmp(optarg, "yes"))
				p->prefault = 1;
			else if (!strcmp(optarg, "no"))
				p->prefault = 0;
			else if (strcmp(optarg, "both"))
				goto bad;
			break;
		case 'S':
			p->scaling = true;
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

/* One vCPU's share of a run. */
struct vcpu_job {
	struct kmmu_vcpu *vcpu;
	uint64_t gpa, size;
	pthread_barrier_t *start;
	uint64_t t_start, t_end;	/* each vCPU's own clock readings */
	int err;
};

static void *vcpu_thread(void *arg)
{
	struct vcpu_job *j = arg;
	struct kmmu_workload wl = {
		.gpa = j->gpa,
		.size = j->size,
		.iterations = 1,
		.pattern = KMMU_PATTERN_SEQUENTIAL,
		.write_percent = 100,
		.value = 1,
	};
	struct kmmu_run run;

	j->err = kmmu_vcpu_set_workload(j->vcpu, &wl);
	pthread_barrier_wait(j->start);
	if (j->err)
		return NULL;
	j->t_start = kmmu_now_ns();
	do {
		memset(&run, 0, sizeof(run));
		j->err = kmmu_vcpu_run(j->vcpu, &run);
	} while (!j->err && run.exit_reason == KMMU_EXIT_INTR);
	j->t_end = kmmu_now_ns();
	if (!j->err && run.exit_reason != KMMU_EXIT_DONE)
		j->err = -EIO;
	return NULL;
}

/*
 * Populate @total bytes with @nvcpus vCPUs on equal disjoint parts, in a
 * fresh VM.  Returns the wall time from the first vCPU's start to the last
 * one's end, in ns, or 0 on error.
 */
static uint64_t populate_once(const struct params *p, int nvcpus, uint64_t total, bool prefault)
{
	struct kmmu_vm_config cfg = { .spte_format = p->cm.format };
	struct vcpu_job jobs[KMMU_LIB_MAX_VCPUS];
	pthread_t threads[KMMU_LIB_MAX_VCPUS];
	pthread_barrier_t start;
	struct kmmu_vm_stats st;
	struct kmmu_mem mem;
	struct kmmu_vm *vm;
	uint64_t t0, ns = 0;
	int i, ret;

	ret = kmmu_mem_alloc(&mem, p->cm.backing, total);
	if (ret) {
		fprintf(stderr, "populate: cannot allocate %s: %s\n",
			kmmu_backing_name(p->cm.backing), strerror(-ret));
		return 0;
	}
	if (prefault)
		kmmu_mem_prefault(&mem);
	ret = kmmu_vm_create(&cfg, &vm);
	if (!ret)
		ret = kmmu_vm_set_memslot(vm, 0, 0, GUEST_GPA, mem.size, mem.addr);
	if (ret) {
		fprintf(stderr, "populate: VM setup: %s\n", strerror(-ret));
		goto out_mem;
	}

	pthread_barrier_init(&start, NULL, nvcpus + 1);
	for (i = 0; i < nvcpus; i++) {
		jobs[i] = (struct vcpu_job){
			.gpa = GUEST_GPA + i * (total / nvcpus),
			.size = total / nvcpus,
			.start = &start,
		};
		ret = kmmu_vcpu_create(vm, i, &jobs[i].vcpu);
		if (ret) {
			fprintf(stderr, "populate: vCPU %d: %s\n", i, strerror(-ret));
			exit(1);
		}
		pthread_create(&threads[i], NULL, vcpu_thread, &jobs[i]);
	}
	pthread_barrier_wait(&start);
	for (i = 0; i < nvcpus; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&start);
	/* From the first vCPU's start to the last one's end, as the vCPUs saw it. */
	t0 = jobs[0].t_start;
	for (i = 0; i < nvcpus; i++) {
		t0 = jobs[i].t_start < t0 ? jobs[i].t_start : t0;
		ns = jobs[i].t_end > ns ? jobs[i].t_end : ns;
	}
	ns -= t0;

	for (i = 0; i < nvcpus; i++) {
		if (jobs[i].err) {
			fprintf(stderr, "populate: vCPU %d failed: %s\n", i, strerror(-jobs[i].err));
			ns = 0;
		}
	}
	if (ns && !kmmu_vm_stats(vm, &st) && st.pages_4k + st.pages_2m * 512 +
	    st.pages_1g * 512 * 512 != total / PAGE) {
		fprintf(stderr, "populate: mapped %llu 4K + %llu 2M + %llu 1G, expected %llu pages\n",
			st.pages_4k, st.pages_2m, st.pages_1g, (unsigned long long)(total / PAGE));
		ns = 0;
	}
	kmmu_vm_free(vm);
out_mem:
	kmmu_mem_free(&mem);
	return ns;
}

/*
 * Run one figure p->reps times, print each, add it to @res as @metric
 * (ns per fault per vCPU), return the median wall time; the wall times in
 * @ns when not NULL.
 */
static uint64_t figure(const struct params *p, struct bench_results *res, const char *metric,
		       const char *label, int nvcpus, uint64_t total, bool prefault, uint64_t *out)
{
	uint64_t ns[1000], faults = total / PAGE;
	double per[1000];
	int r;

	for (r = 0; r < p->reps; r++) {
		ns[r] = populate_once(p, nvcpus, total, prefault);
		if (!ns[r])
			exit(1);
		per[r] = (double)ns[r] * nvcpus / faults;
		printf("%-28s rep %d: %2d vCPU %9llu faults %9.1f ms %8.1f ns/fault\n", label,
		       r + 1, nvcpus, (unsigned long long)faults, ns[r] / 1e6, per[r]);
		fflush(stdout);
		if (out)
			out[r] = ns[r];
	}
	bench_results_param_int(res, "fault_vcpus", nvcpus);
	bench_results_param_str(res, "prefaulted", prefault ? "yes" : "no");
	bench_results_add(res, metric, "ns/fault", true, per, p->reps, "cmpxchg");
	return bench_median(ns, p->reps);
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
		.prefault = -1,
		.scaling = false,
	};
	uint64_t total, faults, med_pre = 0, med_nopre = 0, med_one = 0;
	uint64_t ns_pre[1000], ns_one[1000];
	double floor_ns, floor_samples[BENCH_FLOOR_RUNS], ratio[1000];
	struct bench_results *res = bench_results_new("populate");
	int r;

	if (parse_args(argc, argv, &p))
		return 2;
	if (!kmmu_backend_available()) {
		fprintf(stderr, "populate: backend %s not available\n", kmmu_backend_name());
		return 1;
	}
	total = p.cm.bytes_per_vcpu * p.cm.vcpus;
	faults = total / PAGE;

	printf("populate: backend=%s format=%s backing=%s vcpus=%d bytes/vcpu=%llu reps=%d\n",
	       kmmu_backend_name(),
	       p.cm.format == KMMU_SPTE_FORMAT_NPT ? "npt" : p.cm.format == KMMU_SPTE_FORMAT_EPT ?
	       "ept" : "default", kmmu_backing_name(p.cm.backing), p.cm.vcpus,
	       (unsigned long long)p.cm.bytes_per_vcpu, p.reps);
	if (!res)
		return 1;
	bench_common_params(res, &p.cm);
	floor_ns = bench_floor_cmpxchg(faults, floor_samples);
	bench_results_floor(res, "cmpxchg", faults, floor_samples, BENCH_FLOOR_RUNS);
	printf("floor: one cmpxchg per 8-byte entry, %llu entries in 4 KiB pages: %.2f ns/entry\n",
	       (unsigned long long)faults, floor_ns);

	if (p.prefault != 0)
		med_pre = figure(&p, res, "populate", "prefaulted", p.cm.vcpus, total, true,
				 ns_pre);
	if (p.prefault != 1)
		med_nopre = figure(&p, res, "populate", "not prefaulted", p.cm.vcpus, total,
				   false, NULL);
	if (p.scaling) {
		med_one = figure(&p, res, "populate", "prefaulted, 1 vCPU, all", 1, total, true,
				 ns_one);
		/* Pages per second with all vCPUs over with one, repetition by repetition. */
		for (r = 0; med_pre && r < p.reps; r++)
			ratio[r] = (double)ns_one[r] / ns_pre[r];
		bench_results_param_int(res, "fault_vcpus", p.cm.vcpus);
		if (med_pre)
			bench_results_add(res, "scaling", "x", false, ratio, p.reps, NULL);
	}

	printf("\nsummary (median of %d):\n", p.reps);
	if (med_pre)
		printf("  populate prefaulted     %2d vCPU: %8.1f ns/fault per vCPU (%.1fx floor)\n",
		       p.cm.vcpus, (double)med_pre * p.cm.vcpus / faults,
		       (double)med_pre * p.cm.vcpus / faults / floor_ns);
	if (med_nopre)
		printf("  populate not prefaulted %2d vCPU: %8.1f ns/fault per vCPU (%.1fx floor)\n",
		       p.cm.vcpus, (double)med_nopre * p.cm.vcpus / faults,
		       (double)med_nopre * p.cm.vcpus / faults / floor_ns);
	if (med_one && med_pre)
		printf("  scaling: %d vCPUs fault %.2fx as many pages per second as 1 vCPU\n",
		       p.cm.vcpus, (double)med_one / med_pre);
	printf("  floor: %.2f ns/entry\n", floor_ns);
	return bench_results_finish(res, &p.cm);
}
