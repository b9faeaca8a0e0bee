// SPDX-License-Identifier: GPL-2.0
/*
 * What the bench drivers share: options, same-run floors, the pressure
 * tool beside the workload, the VM and its vCPU threads, small helpers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "l1_tables.h"
#include "kmmu_lib.h"

/* The driver's name, for messages. */
static const char *prog = "bench";

void bench_must(int ret, const char *what)
{
	if (ret < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(-ret));
		exit(1);
	}
}

/* ---- floors ---- */

static const char *const floor_names[BENCH_NR_FLOORS] = {
	[BENCH_FLOOR_READ] = "read",
	[BENCH_FLOOR_READ_WRITE] = "read_write",
	[BENCH_FLOOR_LOCKED_RMW] = "locked_rmw",
	[BENCH_FLOOR_CMPXCHG] = "cmpxchg",
};

static const char *const floor_whats[BENCH_NR_FLOORS] = {
	[BENCH_FLOOR_READ] = "one plain read",
	[BENCH_FLOOR_READ_WRITE] = "one plain read and write",
	[BENCH_FLOOR_LOCKED_RMW] = "one locked RMW",
	[BENCH_FLOOR_CMPXCHG] = "one cmpxchg",
};

const char *bench_floor_name(enum bench_floor f)
{
	return f < BENCH_NR_FLOORS ? floor_names[f] : NULL;
}

const char *bench_floor_what(enum bench_floor f)
{
	return f < BENCH_NR_FLOORS ? floor_whats[f] : NULL;
}

/* Where the reads go, so that the compiler keeps them. */
static volatile uint64_t floor_sink;

/* One pass of @f over @n entries; the time it took in ns. */
static uint64_t floor_pass(enum bench_floor f, uint64_t *e, uint64_t n)
{
	volatile uint64_t *v = e;
	uint64_t i, sum = 0, t0 = kmmu_now_ns();

	switch (f) {
	case BENCH_FLOOR_READ:
		for (i = 0; i < n; i++)
			sum += v[i];
		floor_sink = sum;
		break;
	case BENCH_FLOOR_READ_WRITE:
		for (i = 0; i < n; i++)
			v[i] = v[i] ^ (1ULL << 8);
		break;
	case BENCH_FLOOR_LOCKED_RMW:
		for (i = 0; i < n; i++)
			__atomic_fetch_and(&e[i], ~(1ULL << 8), __ATOMIC_SEQ_CST);
		break;
	default:
		for (i = 0; i < n; i++) {
			uint64_t old = e[i];

			__atomic_compare_exchange_n(&e[i], &old, old + 1, false, __ATOMIC_SEQ_CST,
						    __ATOMIC_SEQ_CST);
		}
		break;
	}
	return kmmu_now_ns() - t0;
}

/*
 * A sample of a floor lasts at least this long: one plain pass over 1 GiB's
 * entries took 75 us, which a single interrupt could double (spreads of
 * 30-160% on the read floors).
 */
#define FLOOR_SAMPLE_NS		5000000ULL
#define FLOOR_MAX_PASSES	4096

double bench_floor_measure(enum bench_floor f, uint64_t entries, int runs, double *samples)
{
	size_t bytes = (entries * 8 + 4095) & ~4095ULL;
	uint64_t *ns, *e, once, passes, k;
	double median;
	int r;

	ns = calloc(runs, sizeof(*ns));
	e = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!ns || e == MAP_FAILED)
		bench_must(-ENOMEM, "floor");
	/* Faulted in: the floor is the entries' cost, not the host's faults. */
	memset(e, 0, bytes);
	/* As many passes a sample as fill FLOOR_SAMPLE_NS, from a first one. */
	once = floor_pass(f, e, entries);
	passes = once ? FLOOR_SAMPLE_NS / once + 1 : FLOOR_MAX_PASSES;
	if (passes > FLOOR_MAX_PASSES)
		passes = FLOOR_MAX_PASSES;
	for (r = 0; r < runs; r++) {
		for (ns[r] = 0, k = 0; k < passes; k++)
			ns[r] += floor_pass(f, e, entries);
		if (samples)
			samples[r] = (double)ns[r] / (entries * passes);
	}
	munmap(e, bytes);
	median = (double)bench_median(ns, runs) / (entries * passes);
	free(ns);
	return median;
}

double bench_floor(struct bench_results *r, enum bench_floor f, uint64_t entries)
{
	double samples[BENCH_FLOOR_RUNS], ns;

	ns = bench_floor_measure(f, entries, BENCH_FLOOR_RUNS, samples);
	bench_results_floor(r, bench_floor_name(f), entries, samples, BENCH_FLOOR_RUNS);
	printf("floor %s: %s per 8-byte entry, %llu entries in 4 KiB pages: %.2f ns/entry\n",
	       bench_floor_name(f), bench_floor_what(f), (unsigned long long)entries, ns);
	return ns;
}

/* ---- pressure ---- */

static const char *const pressure_names[] = {
	[BENCH_PRESSURE_NONE] = "none",
	[BENCH_PRESSURE_STRESS_NG] = "stress-ng",
	[BENCH_PRESSURE_FIO] = "fio",
};

/* How long a tool may take to stop on SIGTERM before it is killed. */
#define PRESSURE_STOP_MS	3000
/* How long it runs before the driver goes on, so it is under way. */
#define PRESSURE_SETTLE_MS	1000

/* The tool running beside the workload: one per process. */
static struct {
	pid_t pid;			/* leader of its own process group; 0: none */
	enum bench_pressure kind;
	uint64_t bytes;
	int dir_fd;			/* its temporary directory, or -1 */
	char dir[1024];
	char log[1024 + 16];
} pressure = { .dir_fd = -1 };

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Whether @pid has exited, without reaping it (so its pid stays its own);
 * how, in @si.
 */
static bool exited_how(pid_t pid, siginfo_t *si)
{
	si->si_pid = 0;
	return !waitid(P_PID, pid, si, WEXITED | WNOHANG | WNOWAIT) && si->si_pid == pid;
}

static bool exited(pid_t pid)
{
	siginfo_t si;

	return exited_how(pid, &si);
}

/*
 * Remove what is in the directory @fd, recursively, and close it.  Only
 * system calls: it runs in the signal handler too.
 */
static void remove_contents(int fd, int depth)
{
	char buf[4096];
	int pass;
	long n, off;

	if (fd < 0)
		return;
	/* Entries removed while reading may hide others: read it again from the start. */
	for (pass = 0; pass < 3 && depth < 8; pass++) {
		lseek(fd, 0, SEEK_SET);
		while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
			for (off = 0; off < n; ) {
				struct {
					uint64_t ino;
					int64_t off;
					unsigned short reclen;
					unsigned char type;
					char name[];
				} *d = (void *)(buf + off);

				off += d->reclen;
				if (!strcmp(d->name, ".") || !strcmp(d->name, ".."))
					continue;
				if (d->type != DT_DIR) {
					unlinkat(fd, d->name, 0);
					continue;
				}
				remove_contents(openat(fd, d->name, O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC), depth + 1);
				unlinkat(fd, d->name, AT_REMOVEDIR);
			}
		}
	}
	close(fd);
}

/*
 * Stop the tool: SIGTERM to its process group, SIGKILL to what is left
 * after PRESSURE_STOP_MS, reap it, remove its files.  Whether it had
 * exited before it was asked to, with its wait status in @status.  Only
 * system calls: it runs in the signal handler too.
 */
static bool pressure_kill(int *status)
{
	pid_t pid = pressure.pid;
	bool early = false;
	int ms;

	if (!pid)
		return false;
	pressure.pid = 0;
	early = exited(pid);
	if (!early) {
		kill(-pid, SIGTERM);
		for (ms = 0; ms < PRESSURE_STOP_MS && !exited(pid); ms += 10)
			sleep_ms(10);
	}
	/* The leader is not reaped yet, so the group's id is still its own. */
	kill(-pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (pressure.dir_fd >= 0) {
		/* Its other processes may still be exiting: give them a moment. */
		for (ms = 0; ms < 500 && !kill(-pid, 0); ms += 10)
			sleep_ms(10);
		remove_contents(pressure.dir_fd, 0);
		pressure.dir_fd = -1;
		rmdir(pressure.dir);
	}
	return early;
}

static void pressure_signal(int sig)
{
	int status;

	pressure_kill(&status);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void pressure_atexit(void)
{
	int status;

	pressure_kill(&status);
}

/* The last lines the tool wrote, on stderr. */
static void pressure_log_tail(void)
{
	char line[512], lines[8][512];
	int n = 0, i;
	FILE *f = fopen(pressure.log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		snprintf(lines[n++ % 8], sizeof(lines[0]), "%s", line);
	fclose(f);
	for (i = n > 8 ? n - 8 : 0; i < n; i++)
		fprintf(stderr, "  %s", lines[i % 8]);
}

/*
 * Stop the tool.  0, or -1 after printing why when it had stopped before
 * the driver was done with it.
 */
static int pressure_stop(void)
{
	const char *name = pressure_names[pressure.kind];
	pid_t pid = pressure.pid;
	int status;
	siginfo_t si;

	if (!pid)
		return 0;
	if (exited_how(pid, &si)) {
		/* Its log goes with its files: show it first. */
		fprintf(stderr, "%s: --pressure %s: %s (pid %d) stopped before the driver was "
			"done (%s %d); its last output:\n", prog, name, name, pid,
			si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status);
		pressure_log_tail();
		pressure_kill(&status);
		return -1;
	}
	if (pressure_kill(&status))
		return -1;
	printf("pressure: %s (pid %d) stopped\n", name, pid);
	return 0;
}

/* Whether @name is an executable in $PATH. */
static bool in_path(const char *name)
{
	const char *path = getenv("PATH") ?: "/usr/bin:/bin";
	char file[PATH_MAX];

	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(file, sizeof(file), "%.*s/%s", (int)len, len ? path : ".", name);
		if (!access(file, X_OK))
			return true;
		path += len + !!path[len];
	}
	return false;
}

static void handle_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = pressure_signal };
	unsigned int i;

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* What the tool works over: as much as the guest has, within [64 MiB, 1 GiB]. */
static uint64_t pressure_bytes(const struct bench_common *cm)
{
	uint64_t bytes = cm->bytes_per_vcpu * cm->vcpus;

	if (bytes < 64ULL << 20)
		return 64ULL << 20;
	return bytes > 1ULL << 30 ? 1ULL << 30 : bytes;
}

/* Start the --pressure tool: 0, or -1 after printing why not. */
static int pressure_start(const struct bench_common *cm)
{
	const char *name = pressure_names[cm->pressure];
	const char *tmp = getenv("TMPDIR");
	char bytes[32], size_arg[48], file_arg[1024 + 32];
	const char *argv[24];
	int pipefd[2], err = 0, log_fd, i, ms;
	pid_t parent = getpid(), pid;
	ssize_t n;

	if (cm->pressure == BENCH_PRESSURE_NONE)
		return 0;
	if (!in_path(name)) {
		fprintf(stderr, "%s: --pressure %s: %s is not installed (not in PATH); "
			"install the %s package\n", prog, name, name, name);
		return -1;
	}
	pressure.kind = cm->pressure;
	pressure.bytes = pressure_bytes(cm);
	snprintf(bytes, sizeof(bytes), "%llum", (unsigned long long)(pressure.bytes >> 20));

	snprintf(pressure.dir, sizeof(pressure.dir), "%s/kmmu-pressure.XXXXXX",
		 tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(pressure.dir)) {
		fprintf(stderr, "%s: --pressure %s: cannot create %s: %s\n", prog, name,
			pressure.dir, strerror(errno));
		return -1;
	}
	pressure.dir_fd = open(pressure.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(pressure.log, sizeof(pressure.log), "%s/pressure.log", pressure.dir);
	log_fd = open(pressure.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (pressure.dir_fd < 0 || log_fd < 0) {
		fprintf(stderr, "%s: --pressure %s: %s: %s\n", prog, name, pressure.dir,
			strerror(errno));
		if (log_fd >= 0)
			close(log_fd);
		remove_contents(pressure.dir_fd, 0);
		pressure.dir_fd = -1;
		rmdir(pressure.dir);
		return -1;
	}

	i = 0;
	argv[i++] = name;
	if (cm->pressure == BENCH_PRESSURE_STRESS_NG) {
		/*
		 * One worker rewriting anonymous memory with MADV_HUGEPAGE (THP
		 * allocation, compaction), one cycling madvise() advice over
		 * its own mappings (page-out, THP split and collapse).
		 */
		argv[i++] = "--vm";
		argv[i++] = "1";
		argv[i++] = "--vm-bytes";
		argv[i++] = bytes;
		argv[i++] = "--vm-madvise";
		argv[i++] = "hugepage";
		argv[i++] = "--madvise";
		argv[i++] = "1";
		argv[i++] = "--oomable";
		argv[i++] = "--temp-path";
		argv[i++] = pressure.dir;
		argv[i++] = "--timeout";
		argv[i++] = "24h";
	} else {
		/* Buffered random reads and writes of one file, written back now and then. */
		snprintf(size_arg, sizeof(size_arg), "--size=%s", bytes);
		snprintf(file_arg, sizeof(file_arg), "--filename=%s/churn.dat", pressure.dir);
		argv[i++] = "--name=churn";
		argv[i++] = file_arg;
		argv[i++] = size_arg;
		argv[i++] = "--rw=randrw";
		argv[i++] = "--bs=4k";
		argv[i++] = "--ioengine=psync";
		argv[i++] = "--invalidate=1";
		argv[i++] = "--fsync=256";
		argv[i++] = "--time_based";
		argv[i++] = "--runtime=86400";
	}
	argv[i] = NULL;

	/* From here on, whatever ends the driver stops the tool too. */
	handle_signals();
	atexit(pressure_atexit);
	if (pipe2(pipefd, O_CLOEXEC)) {
		close(log_fd);
		bench_must(-errno, "pipe");
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(log_fd);
		bench_must(-errno, "fork");
	}
	if (!pid) {
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		/*
		 * Told to stop when the driver dies, however it dies (SIGKILL
		 * included): on SIGTERM the tool stops its workers and removes
		 * their files itself.
		 */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		dup2(null, 0);
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		execvp(name, (char *const *)argv);
		err = errno;
		n = write(pipefd[1], &err, sizeof(err));
		_exit(127);
	}
	setpgid(pid, pid);
	pressure.pid = pid;
	close(log_fd);
	close(pipefd[1]);
	n = read(pipefd[0], &err, sizeof(err));
	close(pipefd[0]);
	if (n > 0) {
		fprintf(stderr, "%s: --pressure %s: cannot run %s: %s\n", prog, name, name,
			strerror(err));
		pressure_atexit();
		return -1;
	}
	for (ms = 0; ms < PRESSURE_SETTLE_MS && !exited(pid); ms += 50)
		sleep_ms(50);
	if (exited(pid)) {
		fprintf(stderr, "%s: --pressure %s: %s exited at once; its last output:\n", prog,
			name, name);
		pressure_log_tail();
		pressure_atexit();
		return -1;
	}
	printf("pressure: %s (pid %d) running beside the workload over %s bytes, files in %s\n",
	       name, pid, bytes, pressure.dir);
	return 0;
}

/* ---- CPU placement ---- */

/*
 * A timed thread stays on one CPU.  One the scheduler moves loses its
 * caches and TLB entries and charges that to the figure: populate on 1 GiB
 * took 132-139 ns a fault pinned and 170-350 unpinned on one 2-core machine
 * of the kind the bench runs on, in the same hour.  vCPUs take the allowed
 * CPUs from the last one down: on that machine CPU 0 was the slower one for
 * memory-heavy work (populate 198-217 ns a fault pinned there, 132-139 on
 * CPU 1); the driver's thread waits, or zaps, or ages, on the next.
 */
static cpu_set_t pin_cpus;	/* the CPUs the process was allowed at the start */
static int pin_nr;		/* how many; 0: no pinning */

static void pin_init(const struct bench_common *cm)
{
	if (cm->no_pin)
		return;
	if (sched_getaffinity(0, sizeof(pin_cpus), &pin_cpus)) {
		fprintf(stderr, "%s: sched_getaffinity: %s\n", prog, strerror(errno));
		exit(1);
	}
	pin_nr = CPU_COUNT(&pin_cpus);
}

void bench_pin_self(int slot)
{
	int cpu, k, ret;
	cpu_set_t one;

	if (!pin_nr)
		return;
	k = pin_nr - 1 - slot % pin_nr;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &pin_cpus) && !k--)
			break;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	ret = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	if (ret) {
		fprintf(stderr, "%s: cannot pin a thread to CPU %d: %s\n", prog, cpu, strerror(ret));
		exit(1);
	}
}

/* ---- options ---- */

#define OPT_PRESSURE	0x1000
#define OPT_PIN		0x1001
#define MAX_LONGOPTS	32

static const char *opt_name(int c, const struct option *longopts, char *buf, size_t size)
{
	for (; longopts && longopts->name; longopts++) {
		if (longopts->val == c) {
			snprintf(buf, size, "--%s", longopts->name);
			return buf;
		}
	}
	snprintf(buf, size, "-%c", c);
	return buf;
}

/* 1 when @c was a common option and is now in @cm, 0 when it is not one, -EINVAL. */
static int parse_common(int c, const char *arg, struct bench_common *cm)
{
	enum kmmu_backing b;

	switch (c) {
	case 'v':
		return bench_parse_int(arg, 1, KMMU_LIB_MAX_VCPUS, &cm->vcpus) ?: 1;
	case 'b':
		if (bench_parse_size(arg, &cm->bytes_per_vcpu) || cm->bytes_per_vcpu % 4096)
			return -EINVAL;
		return 1;
	case 's':
		if (kmmu_backing_parse(arg, &b))
			return -EINVAL;
		cm->backing = b;
		return 1;
	case 'o':
		if (!*arg)
			return -EINVAL;
		cm->out = arg;
		return 1;
	case 'W':
		return bench_parse_int(arg, 0, 10, &cm->warmup) ?: 1;
	case 'F':
		if (!strcmp(arg, "ept"))
			cm->format = KMMU_SPTE_FORMAT_EPT;
		else if (!strcmp(arg, "npt"))
			cm->format = KMMU_SPTE_FORMAT_NPT;
		else if (!strcmp(arg, "default"))
			cm->format = KMMU_SPTE_FORMAT_DEFAULT;
		else
			return -EINVAL;
		return 1;
	case 'B':
		/* Read by kmmu_lib at its first call, which comes after the options. */
		if (strcmp(arg, "dev") && strcmp(arg, "user") && strcmp(arg, "hw"))
			return -EINVAL;
		return setenv("KMMU_BACKEND", arg, 1) ? -EINVAL : 1;
	case OPT_PRESSURE:
		if (!strcmp(arg, "none"))
			cm->pressure = BENCH_PRESSURE_NONE;
		else if (!strcmp(arg, "stress-ng"))
			cm->pressure = BENCH_PRESSURE_STRESS_NG;
		else if (!strcmp(arg, "fio"))
			cm->pressure = BENCH_PRESSURE_FIO;
		else
			return -EINVAL;
		return 1;
	case OPT_PIN:
		if (strcmp(arg, "yes") && strcmp(arg, "no"))
			return -EINVAL;
		cm->no_pin = !strcmp(arg, "no");
		return 1;
	default:
		return 0;
	}
}

int bench_parse_args(int argc, char **argv, const struct bench_args *a, struct bench_common *cm,
		     void *p)
{
	static const struct option common_long[] = {
		{ "pressure", required_argument, NULL, OPT_PRESSURE },
		{ "pin", required_argument, NULL, OPT_PIN },
		{ "help", no_argument, NULL, 'h' },
	};
	const int nc = sizeof(common_long) / sizeof(common_long[0]);
	struct option longopts[MAX_LONGOPTS] = {};
	char opts[128], buf[64];
	const char *why;
	int c, n = 0, ret;

	prog = a->name;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (c = 0; c < nc; c++)
		longopts[n++] = common_long[c];
	while (a->longopts && a->longopts[n - nc].name && n < MAX_LONGOPTS - 1) {
		longopts[n] = a->longopts[n - nc];
		n++;
	}
	snprintf(opts, sizeof(opts), "hv:b:s:F:o:B:W:%s", a->opts ?: "");
	cm->warmup = a->warmup ?: 1;

	while ((c = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		if (c == 'h') {
			a->help(argv[0]);
			exit(0);
		}
		if (c == '?' || c == ':')
			goto usage;
		ret = parse_common(c, optarg, cm);
		if (!ret)
			ret = a->parse(c, optarg, p);
		if (ret < 0) {
			fprintf(stderr, "%s: bad value for %s: '%s'\n", prog,
				opt_name(c, longopts, buf, sizeof(buf)), optarg ?: "");
			goto usage;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument: '%s'\n", prog, argv[optind]);
		goto usage;
	}
	why = a->check ? a->check(p) : NULL;
	if (why) {
		fprintf(stderr, "%s: %s\n", prog, why);
		goto usage;
	}
	return 0;
usage:
	a->help(argv[0]);
	return -EINVAL;
}

int bench_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int bench_parse_log_mode(const char *s, uint32_t *mode)
{
	if (!strcmp(s, "wrprot"))
		*mode = KMMU_DIRTY_LOG_MODE_WRPROT;
	else if (!strcmp(s, "dbit"))
		*mode = KMMU_DIRTY_LOG_MODE_DBIT;
	else
		return -EINVAL;
	return 0;
}

int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v;

	if (*s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'g': case 'G':
		v <<= 10;
		/* fall through */
	case 'm': case 'M':
		v <<= 10;
		/* fall through */
	case 'k': case 'K':
		v <<= 10;
		end++;
		break;
	}
	if (*end || !v)
		return -EINVAL;
	*out = v;
	return 0;
}

int bench_begin(struct bench_common *cm)
{
	if (!kmmu_backend_available()) {
		fprintf(stderr, "%s: backend %s not available\n", prog, kmmu_backend_name());
		return 1;
	}
	/* The pressure tool runs anywhere; the floors where vCPU 0 will. */
	pin_init(cm);
	if (pressure_start(cm))
		return 1;
	bench_pin_self(0);
	return 0;
}

/* ---- results ---- */

void bench_common_params(struct bench_results *r, const struct bench_common *cm)
{
	bench_results_param_int(r, "vcpus", cm->vcpus);
	bench_results_param_int(r, "bytes_per_vcpu", cm->bytes_per_vcpu);
	bench_results_param_str(r, "backing", kmmu_backing_name(cm->backing));
	bench_results_param_str(r, "spte_format", cm->format == KMMU_SPTE_FORMAT_EPT ? "ept" :
				cm->format == KMMU_SPTE_FORMAT_NPT ? "npt" : "default");
	bench_results_param_str(r, "pressure", pressure_names[cm->pressure]);
	if (cm->pressure != BENCH_PRESSURE_NONE)
		bench_results_param_int(r, "pressure_bytes", pressure_bytes(cm));
	if (cm->no_pin)
		bench_results_param_str(r, "pin", "no");
}

void bench_add(struct bench_results *r, const char *metric, const char *unit,
	       bool lower_is_better, const double *samples, int n, enum bench_floor floor)
{
	bench_results_add(r, metric, unit, lower_is_better, samples, n, bench_floor_name(floor));
}

void bench_add_per_page(struct bench_results *r, const char *metric, const uint64_t *ns, int n,
			uint64_t pages, enum bench_floor floor)
{
	double v[1000];
	int i;

	for (i = 0; i < n && i < 1000; i++)
		v[i] = (double)ns[i] / pages;
	bench_add(r, metric, "ns/4K", true, v, i, floor);
}

int bench_results_finish(struct bench_results *r, const struct bench_common *cm)
{
	int ret = 0;

	if (pressure_stop()) {
		bench_results_free(r);
		return 1;
	}
	if (r && cm->out) {
		ret = bench_results_write(r, cm->out);
		if (ret)
			fprintf(stderr, "%s: cannot write results to %s: %s\n", prog, cm->out,
				strerror(-ret));
		else
			printf("results: appended to %s\n", cm->out);
	}
	bench_results_free(r);
	return !!ret;
}

/* ---- vCPUs and VMs ---- */

static void ignore_entry(void *arg, uint32_t slot, uint64_t offset)
{
}

/* A full ring: collect it, reset the rings.  0 or -errno. */
static int ring_full(struct bench_vcpu *v)
{
	uint64_t t0 = kmmu_now_ns(), t1;
	uint32_t n = kmmu_vcpu_collect_dirty_ring(v->vcpu, ignore_entry, NULL);
	long reset;

	t1 = kmmu_now_ns();
	reset = kmmu_vm_reset_dirty_rings(v->vcpu->vm);
	v->ring_collect_ns += t1 - t0;
	v->ring_reset_ns += kmmu_now_ns() - t1;
	if (reset < 0)
		return reset;
	/* Nothing to make room with: it would exit full again for ever. */
	if (!n && !reset)
		return -ENOSPC;
	v->ring_full++;
	v->ring_collected += n;
	return 0;
}

static void *vcpu_thread(void *arg)
{
	struct bench_vcpu *v = arg;
	struct kmmu_run run;
	int ret;

	bench_pin_self(v->slot);
	v->err = kmmu_vcpu_set_workload(v->vcpu, &v->wl);
	pthread_barrier_wait(v->start);
	if (v->err)
		return NULL;
	v->t_start = kmmu_now_ns();
	for (;;) {
		memset(&run, 0, sizeof(run));
		ret = kmmu_vcpu_run(v->vcpu, &run);
		if (ret == -EINTR || (!ret && run.exit_reason == KMMU_EXIT_INTR))
			continue;
		if (ret || run.exit_reason == KMMU_EXIT_DONE) {
			v->err = ret;
			break;
		}
		if (run.exit_reason == KMMU_EXIT_DIRTY_RING_FULL && v->vcpu->ring) {
			v->err = ring_full(v);
			if (v->err)
				break;
			continue;
		}
		fprintf(stderr, "%s: vCPU %d: unexpected exit %u\n", prog, v->vcpu->id,
			run.exit_reason);
		v->err = -EIO;
		break;
	}
	v->t_end = kmmu_now_ns();
	return NULL;
}

/*
 * Profiling the vCPUs' runs alone: with `perf record --control
 * fifo:CTL,ACK -D -1` around a driver and KMMU_BENCH_PERF_CTL=CTL,ACK[,SKIP]
 * in its environment, perf samples from just before the vCPUs start until
 * they are all done, in every run but the first SKIP (warm-ups: -W).  A
 * variable that names no FIFO perf has open is an error.
 */
static void perf_ctl(bool on)
{
	static int ctl = -1, ack = -1, skip, runs;
	static bool tried;
	const char *env = getenv("KMMU_BENCH_PERF_CTL");
	char path[2][PATH_MAX], buf[8];
	ssize_t len;

	if (!env)
		return;
	if (!tried) {
		tried = true;
		if (sscanf(env, "%4095[^,],%4095[^,],%d", path[0], path[1], &skip) < 2) {
			fprintf(stderr, "%s: KMMU_BENCH_PERF_CTL=%s: not CTL,ACK[,SKIP]\n", prog, env);
			exit(1);
		}
		ctl = open(path[0], O_WRONLY | O_CLOEXEC);
		ack = open(path[1], O_RDONLY | O_CLOEXEC);
		if (ctl < 0 || ack < 0) {
			fprintf(stderr, "%s: KMMU_BENCH_PERF_CTL: cannot open %s: %s\n", prog,
				path[ctl < 0 ? 0 : 1], strerror(errno));
			exit(1);
		}
	}
	if (on && runs++ < skip)
		return;
	if (!on && runs <= skip)
		return;
	len = on ? 7 : 8;
	if (write(ctl, on ? "enable\n" : "disable\n", len) != len || read(ack, buf, sizeof(buf)) <= 0) {
		fprintf(stderr, "%s: KMMU_BENCH_PERF_CTL: perf does not answer\n", prog);
		exit(1);
	}
}

uint64_t bench_run_vcpus(struct bench_vcpu *v, int n)
{
	pthread_t threads[KMMU_LIB_MAX_VCPUS];
	uint64_t start = UINT64_MAX, end = 0;
	pthread_barrier_t barrier;
	char what[32];
	int i;

	pthread_barrier_init(&barrier, NULL, n + 1);
	for (i = 0; i < n; i++) {
		v[i].start = &barrier;
		v[i].err = 0;
		v[i].ring_full = v[i].ring_collected = 0;
		v[i].ring_collect_ns = v[i].ring_reset_ns = 0;
		v[i].slot = i;
		bench_must(-pthread_create(&threads[i], NULL, vcpu_thread, &v[i]), "thread");
	}
	/* Out of the vCPUs' way while they run, back on vCPU 0's CPU after. */
	bench_pin_self(n);
	perf_ctl(true);
	pthread_barrier_wait(&barrier);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	perf_ctl(false);
	bench_pin_self(0);
	pthread_barrier_destroy(&barrier);
	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "vCPU %d", i);
		bench_must(v[i].err, what);
		start = v[i].t_start < start ? v[i].t_start : start;
		end = v[i].t_end > end ? v[i].t_end : end;
	}
	return end - start;
}

void bench_vm_create(struct bench_vm *bv, int backing, uint64_t size,
		     const struct kmmu_vm_config *cfg)
{
	struct kmmu_mem mem;
	char what[64];

	snprintf(what, sizeof(what), "%llu bytes of %s", (unsigned long long)size,
		 kmmu_backing_name(backing));
	bench_must(kmmu_mem_alloc(&mem, backing, size), what);
	bench_vm_create_on(bv, &mem, size, cfg);
	bv->mem_borrowed = false;
}

void bench_vm_create_on(struct bench_vm *bv, const struct kmmu_mem *mem, uint64_t size,
			const struct kmmu_vm_config *cfg)
{
	memset(bv, 0, sizeof(*bv));
	bv->size = size;
	bv->mem = *mem;
	bv->mem_borrowed = true;
	bench_must(kmmu_vm_create(cfg, &bv->vm), "VM");
}

void bench_vm_setup(struct bench_vm *bv, int n)
{
	uint64_t part = bv->size / n;
	int i;

	bench_must(kmmu_vm_set_memslot(bv->vm, 0, 0, BENCH_GUEST_GPA, bv->size, bv->mem.addr),
		   "memslot");
	for (i = 0; i < n; i++) {
		bench_must(kmmu_vcpu_create(bv->vm, i, &bv->vcpus[i].vcpu), "vCPU");
		bv->vcpus[i].wl = (struct kmmu_workload){
			.gpa = BENCH_GUEST_GPA + i * part,
			.size = part,
			.iterations = 1,
			.pattern = KMMU_PATTERN_SEQUENTIAL,
			.write_percent = 100,
			.value = 1,
		};
	}
	bv->nr_vcpus = n;
}

uint64_t bench_vm_run(struct bench_vm *bv)
{
	return bench_run_vcpus(bv->vcpus, bv->nr_vcpus);
}

uint64_t bench_vm_set_logging(struct bench_vm *bv, bool on)
{
	uint64_t t0 = kmmu_now_ns();

	bench_must(kmmu_vm_set_memslot(bv->vm, 0, on ? KMMU_MEM_LOG_DIRTY_PAGES : 0,
				       BENCH_GUEST_GPA, bv->size, bv->mem.addr),
		   on ? "enable logging" : "disable logging");
	return kmmu_now_ns() - t0;
}

void bench_vm_stats(struct bench_vm *bv, struct kmmu_vm_stats *st)
{
	bench_must(kmmu_vm_stats(bv->vm, st), "stats");
}

/*
 * On hardware vCPUs, the exits behind the VM's figures: #NPF (a fault
 * each), INTR (interrupts, kicks among them) and VMMCALL (the guest's
 * reports: done, or RUN's budget), over every vCPU.
 */
static void print_hw_exits(const struct bench_vm *bv)
{
	static const char *const names[] = { "hw_npf_exits", "hw_intr_exits", "hw_vmmcall_exits" };
	uint64_t sum[3] = { 0 }, v;
	int i, j, fd;

	for (i = 0; i < bv->nr_vcpus; i++) {
		fd = kmmu_vcpu_stats_fd(bv->vcpus[i].vcpu);
		if (fd < 0)
			return;
		for (j = 0; j < 3; j++)
			if (!kmmu_stats_get(fd, names[j], &v))
				sum[j] += v;
		close(fd);
	}
	printf("  hw exits: %llu NPF, %llu INTR, %llu VMMCALL\n", (unsigned long long)sum[0],
	       (unsigned long long)sum[1], (unsigned long long)sum[2]);
}

void bench_vm_free(struct bench_vm *bv)
{
	if (kmmu_backend_hw() && bv->vm)
		print_hw_exits(bv);
	kmmu_vm_free(bv->vm);
	if (!bv->mem_borrowed)
		kmmu_mem_free(&bv->mem);
	bv->vm = NULL;
}

/* L1's tables of a nested run: in a memslot of their own, 1 GiB-aligned after the data. */
#define L1_TABLES_SLOT	1

const char *bench_nested_refusal(bool nested)
{
	return nested && kmmu_backend_hw() ?
	       "--nested: hardware vCPUs run their guests unnested" : NULL;
}

void bench_nested_setup(struct bench_vm *bv, struct kmmu_mem *tables, const char *name)
{
	uint64_t gpa = (BENCH_GUEST_GPA + bv->size + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
	uint64_t size = kmmu_l1_tables_for(bv->size) * L1_PAGE;
	struct kmmu_l1_tables l1;
	int i;

	if (kmmu_ioctl(bv->vm->fd, KMMU_CHECK_EXTENSION, KMMU_CAP_NESTED) != 1) {
		fprintf(stderr, "%s: --nested: this VM has no nested workloads "
			"(KMMU_CAP_NESTED is 0: a hardware vCPU?)\n", name);
		exit(1);
	}
	bench_must(kmmu_mem_alloc(tables, KMMU_BACKING_ANON, size), "L1 tables");
	bench_must(kmmu_vm_set_memslot(bv->vm, L1_TABLES_SLOT, 0, gpa, size, tables->addr),
		   "L1 tables memslot");
	kmmu_l1_init(&l1, tables->addr, gpa, size,
		     kmmu_vm_format(bv->vm) == KMMU_SPTE_FORMAT_EPT);
	kmmu_l1_map(&l1, BENCH_GUEST_GPA, BENCH_GUEST_GPA, bv->size, 1, true);
	for (i = 0; i < bv->nr_vcpus; i++) {
		bv->vcpus[i].wl.flags |= KMMU_WL_NESTED;
		bv->vcpus[i].wl.nested_root = kmmu_l1_root(&l1, true);
	}
}

/* ---- medians ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t bench_median(uint64_t *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median_d(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}
