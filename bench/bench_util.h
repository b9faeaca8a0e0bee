/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every bench driver shares: the options and their parsing, the
 * same-run floors its figures are compared with, the pressure run beside
 * the workload, the VM and its vCPU threads, medians.
 */
#ifndef KMMU_BENCH_UTIL_H
#define KMMU_BENCH_UTIL_H

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kmmu_lib.h"
#include "results.h"

#define BENCH_FLOOR_RUNS	5
#define BENCH_GUEST_GPA		(1ULL << 32)
#define BENCH_PAGE		4096ULL

/*
 * The physical floors, per 8-byte entry, over entries packed 512 to a
 * 4 KiB page like SPTEs in page tables: a plain read each (a walk that
 * only looks), a plain read and write each (a table filled or rewritten
 * under the lock), a locked read-modify-write each (a pass that changes
 * every SPTE: protection, aging), a compare-and-exchange each (a fault
 * installs one SPTE).
 */
enum bench_floor {
	BENCH_FLOOR_READ,
	BENCH_FLOOR_READ_WRITE,
	BENCH_FLOOR_LOCKED_RMW,
	BENCH_FLOOR_CMPXCHG,
	BENCH_NR_FLOORS,
};

/* "read", "read_write", "locked_rmw", "cmpxchg": the floor's metric in the results. */
const char *bench_floor_name(enum bench_floor f);
/* What one entry costs in it, for people: "one locked RMW". */
const char *bench_floor_what(enum bench_floor f);
/*
 * Floor @f over @entries entries, @runs times: the median in ns per entry,
 * each run's figure in @samples when not NULL.  A run is as many passes
 * over the entries as last 5 ms (4096 at most).  Exits on a failure.
 */
double bench_floor_measure(enum bench_floor f, uint64_t entries, int runs, double *samples);
/*
 * Floor @f over @entries entries, BENCH_FLOOR_RUNS times, added to the
 * floors of @r and printed: the median in ns per entry.
 */
double bench_floor(struct bench_results *r, enum bench_floor f, uint64_t entries);

/* What runs beside the workload (--pressure). */
enum bench_pressure {
	BENCH_PRESSURE_NONE,
	BENCH_PRESSURE_STRESS_NG,	/* anonymous memory, THP, madvise and reclaim */
	BENCH_PRESSURE_FIO,		/* page-cache churn on a file */
};

/* The options every driver takes, with the same letters and checks. */
struct bench_common {
	int vcpus;			/* -v */
	uint64_t bytes_per_vcpu;	/* -b */
	int backing;			/* -s: enum kmmu_backing */
	uint32_t format;		/* -F: KMMU_SPTE_FORMAT_* */
	const char *out;		/* -o: JSON results document to append to */
	enum bench_pressure pressure;	/* --pressure */
	int warmup;			/* -W: repetitions run first, not counted */
	bool no_pin;			/* --pin no */
};

#define BENCH_COMMON_HELP \
	" -h: print this help and exit\n" \
	" -v: vCPUs, each on its own range (default: 1)\n" \
	" -b: bytes of guest memory per vCPU, with k/m/g suffixes (default: 1g)\n" \
	" -F: SPTE format: default, ept, npt (default: default, the CPU's)\n" \
	" -W: warm-up repetitions, run and printed first, not counted: the\n" \
	"     first VM of a process pays for what later ones find ready (memory\n" \
	"     first touched, allocators grown); floor has none, spp always one\n" \
	"     (default: 1; populate and zap_latency: 2)\n" \
	" -o: append the results to this JSON document, created if missing\n" \
	"     (schema: bench/README.md) (default: none)\n" \
	" --pressure: what runs beside the workload, from before the floors to the\n" \
	"     end: none; stress-ng (anonymous memory with THP, madvise, page-out);\n" \
	"     fio (buffered random I/O on a file in $TMPDIR or /var/tmp); the tool\n" \
	"     must be installed (default: none)\n" \
	" --pin: yes: vCPU i runs on the i-th CPU from the last one allowed, and\n" \
	"     the driver on the CPU after the vCPUs', the floors on vCPU 0's; no:\n" \
	"     where the scheduler puts them (default: yes)\n"
#define BENCH_BACKEND_HELP \
	"\nBackend: -B dev|user|hw, or KMMU_BACKEND (default: dev when /dev/kmmu\n" \
	"exists); hw is dev with the vCPUs as guest code on the CPU (AMD SVM).\n"

/* How a driver's own options are parsed by bench_parse_args(). */
struct bench_args {
	const char *name;		/* the driver's, for its messages */
	const char *opts;		/* its short options, as getopt() takes them */
	const struct option *longopts;	/* its long options, NULL-terminated, or NULL */
	/* Take option @c (a short letter or a long option's val): 0, or -EINVAL. */
	int (*parse)(int c, const char *arg, void *p);
	/* After every option: NULL, or what is wrong with their combination. */
	const char *(*check)(void *p);
	void (*help)(const char *argv0);
	int warmup;			/* -W's default; 0 for 1 */
};

/*
 * Parse @argv into @cm and, through @a, the driver's @p: 0, or -EINVAL
 * after printing what was wrong and the usage (the driver exits with 2).
 * -h prints the usage and exits with 0.  stdout becomes line-buffered.
 */
int bench_parse_args(int argc, char **argv, const struct bench_args *a, struct bench_common *cm,
		     void *p);
/* A decimal in [lo, hi]; -EINVAL otherwise. */
int bench_parse_int(const char *s, int lo, int hi, int *out);
/* "1g", "512m", "4096": bytes; -EINVAL when it is none of those. */
int bench_parse_size(const char *s, uint64_t *out);
/* "wrprot" or "dbit": a KMMU_DIRTY_LOG_MODE_*. */
int bench_parse_log_mode(const char *s, uint32_t *mode);

/*
 * After the arguments: the backend must be there, and the --pressure tool
 * is started (and stopped whenever the driver exits, signals included).
 * 0, or 1 after printing why not (the driver exits with 1).
 */
int bench_begin(struct bench_common *cm);
/* Print "<driver>: @what: <error>" and exit(1) when @ret is an error. */
void bench_must(int ret, const char *what);

/* The common options as parameters of the figures added next. */
void bench_common_params(struct bench_results *r, const struct bench_common *cm);
/* A figure from @n totals in ns over @pages 4 KiB pages each: ns/4K samples. */
void bench_add_per_page(struct bench_results *r, const char *metric, const uint64_t *ns, int n,
			uint64_t pages, enum bench_floor floor);
/* The same as bench_results_add() with the floor by its enum. */
void bench_add(struct bench_results *r, const char *metric, const char *unit,
	       bool lower_is_better, const double *samples, int n, enum bench_floor floor);
/*
 * Stop the pressure, which must have run to the end; write @r to -o's
 * document, if one was asked for, and free it.  0 or 1 (failed).
 */
int bench_results_finish(struct bench_results *r, const struct bench_common *cm);

/* One vCPU of bench_run_vcpus(). */
struct bench_vcpu {
	struct kmmu_vcpu *vcpu;
	struct kmmu_workload wl;	/* what it runs */
	/* Out, for the last bench_run_vcpus(): */
	uint64_t t_start, t_end;	/* its own clock at its first RUN and after its last */
	uint64_t ring_full;		/* KMMU_EXIT_DIRTY_RING_FULL exits */
	uint64_t ring_collected;	/* ring entries it collected at those exits */
	uint64_t ring_collect_ns;	/* time it spent collecting them */
	uint64_t ring_reset_ns;		/* and resetting the rings after */
	int err;
	int slot;			/* its CPU: bench_pin_self() */
	pthread_barrier_t *start;
};

/*
 * Keep the calling thread on the CPU of @slot (vCPU i's is slot i): the
 * @slot-th of the process's allowed CPUs counting from the last, modulo
 * their number.  Nothing under --pin no.
 */
void bench_pin_self(int slot);

/*
 * Run every vCPU's workload to KMMU_EXIT_DONE, each in a thread of its
 * own, all released at once.  A vCPU whose dirty ring fills collects its
 * ring, resets the rings and goes on (timed apart, and inside the total).
 * The time from the first vCPU's start to the last one's end, in ns;
 * exits after printing on a failure.
 */
uint64_t bench_run_vcpus(struct bench_vcpu *v, int n);

/* A VM with one memslot over all its memory, at BENCH_GUEST_GPA. */
struct bench_vm {
	struct kmmu_vm *vm;
	struct kmmu_mem mem;
	bool mem_borrowed;		/* bench_vm_create_on(): not freed with the VM */
	uint64_t size;
	int nr_vcpus;
	struct bench_vcpu vcpus[KMMU_LIB_MAX_VCPUS];
};

/* @size bytes of @backing and a VM of @cfg (capabilities come next); exits on a failure. */
void bench_vm_create(struct bench_vm *bv, int backing, uint64_t size,
		     const struct kmmu_vm_config *cfg);

/*
 * The same on the first @size bytes of memory the caller keeps (@mem->size
 * may be rounded up to its page size): bench_vm_free() leaves @mem alone.
 */
void bench_vm_create_on(struct bench_vm *bv, const struct kmmu_mem *mem, uint64_t size,
			const struct kmmu_vm_config *cfg);
/*
 * The memslot, and @n vCPUs, each with a workload of one sequential pass
 * writing every page of its own 1/@n of the memory; exits on a failure.
 */
void bench_vm_setup(struct bench_vm *bv, int n);
/* bench_run_vcpus() over its vCPUs. */
uint64_t bench_vm_run(struct bench_vm *bv);
/* Turn dirty logging of the memslot on or off: the time it took, in ns; exits on a failure. */
uint64_t bench_vm_set_logging(struct bench_vm *bv, bool on);
/* The VM's statistics; exits on a failure. */
void bench_vm_stats(struct bench_vm *bv, struct kmmu_vm_stats *st);
void bench_vm_free(struct bench_vm *bv);
/*
 * Make the vCPUs of @bv L2 guests (KMMU_WL_NESTED): L1's identity map of
 * the memory with 4K leaves, built in @tables, a memslot of its own
 * 1 GiB-aligned after the data; exits on a failure, saying @name.
 */
void bench_nested_setup(struct bench_vm *bv, struct kmmu_mem *tables, const char *name);
/* A driver's check() of --nested: why it cannot run, or NULL. */
const char *bench_nested_refusal(bool nested);

/* The median of @n values; sorts @v. */
uint64_t bench_median(uint64_t *v, int n);
double bench_median_d(double *v, int n);

#endif /* KMMU_BENCH_UTIL_H */
