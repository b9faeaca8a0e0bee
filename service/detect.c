// SPDX-License-Identifier: GPL-2.0
/*
 * Change point detection: E-divisive means proposes, Welch's t-test and the
 * merge step decide, Mann-Whitney U on the raw samples confirms.  detect.h
 * describes the steps; this file only uses libc and libm.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"

#define SQRT2		1.41421356237309504880
#define LOG_SQRT_2PI	0.91893853320467274178
#define PI		3.14159265358979323846
/* Rounds of merge and move before the result is taken as it is. */
#define MAX_ROUNDS	16

void detect_config_default(struct detect_config *cfg)
{
	/*
	 * The t-test runs on the best split of the window, not on a split
	 * chosen beforehand, so its p-value is optimistic: 0.001 (Otava's
	 * default) keeps pure noise quiet.  2% is several times what 1% noise
	 * moves the median of even a short segment, and steps under it are
	 * rarely worth a person's time.  The U test sees many more values
	 * than the t-test: at 0.001 it still passes a 5% step at 1% noise with
	 * 3 commits of 5 samples on a side by orders of magnitude, and it is
	 * what stops a bump of 3 or 4 noisy commits at 2 to 5% noise.  A
	 * series without raw samples then needs 5 commits on the short side.
	 * 30 points a window keep the cost linear and still see a step with
	 * 15 commits on each side; 3 commits a side is the least a t-test
	 * can say anything about.
	 */
	/*
	 * A step of 3 noises (of the per-commit medians) is what a t-test on
	 * 3 commits a side separates at 0.001 often enough; with fewer than
	 * 12 commits the spread is too rough to go by, and the fixed 2%
	 * stands in.
	 */
	cfg->max_pvalue = 0.001;
	cfg->noise_factor = 3;
	cfg->noise_points = 12;
	cfg->min_magnitude = 0.02;
	cfg->mwu_alpha = 0.001;
	cfg->window = 30;
	cfg->min_size = 3;
}

int detect_config_check(const struct detect_config *cfg)
{
	if (!cfg)
		return -EINVAL;
	if (!(cfg->max_pvalue > 0 && cfg->max_pvalue <= 1))
		return -EINVAL;
	if (!(cfg->min_magnitude >= 0 && isfinite(cfg->min_magnitude)))
		return -EINVAL;
	if (!(cfg->noise_factor >= 0 && isfinite(cfg->noise_factor)) || cfg->noise_points < 3)
		return -EINVAL;
	if (!(cfg->mwu_alpha > 0 && cfg->mwu_alpha <= 1))
		return -EINVAL;
	if (cfg->min_size < 2 || cfg->window / 2 < cfg->min_size)
		return -EINVAL;
	return 0;
}

size_t detect_max_changes(size_t n, const struct detect_config *cfg)
{
	/* Every segment has at least min_size points. */
	if (!cfg || cfg->min_size < 2)
		return n;
	return n / cfg->min_size;
}

enum detect_kind detect_kind(const struct detect_change *c, bool lower_is_better)
{
	bool up = c->new_median > c->old_median;

	/* Equal medians pass only a min_magnitude of 0: not worse. */
	if (c->new_median == c->old_median)
		return DETECT_IMPROVEMENT;
	return up == lower_is_better ? DETECT_REGRESSION : DETECT_IMPROVEMENT;
}

/* Special functions for the t distribution. */

/* log Gamma(x) for x > 0: Lanczos, g = 7, 9 terms, ~15 digits. */
static double log_gamma(double x)
{
	static const double c[9] = {
		0.99999999999980993, 676.5203681218851, -1259.1392167224028,
		771.32342877765313, -176.61502916214059, 12.507343278686905,
		-0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
	};
	double a, t;
	int i;

	if (x < 0.5)	/* reflection */
		return log(PI / fabs(sin(PI * x))) - log_gamma(1 - x);
	x -= 1;
	a = c[0];
	for (i = 1; i < 9; i++)
		a += c[i] / (x + i);
	t = x + 7.5;
	return LOG_SQRT_2PI + (x + 0.5) * log(t) - t + log(a);
}

#define CF_TINY	1e-300

/* One term @aa of a modified Lentz evaluation: its factor of the result. */
static double lentz_step(double aa, double *c, double *d)
{
	*d = 1 + aa * *d;
	*c = 1 + aa / *c;
	if (fabs(*d) < CF_TINY)
		*d = CF_TINY;
	if (fabs(*c) < CF_TINY)
		*c = CF_TINY;
	*d = 1 / *d;
	return *d * *c;
}

/* Continued fraction of the incomplete beta function, modified Lentz. */
static double beta_cf(double a, double b, double x)
{
	const double eps = 1e-15;
	double c = 1, d, h;
	int m;

	d = 1 - (a + b) * x / (a + 1);
	if (fabs(d) < CF_TINY)
		d = CF_TINY;
	d = 1 / d;
	h = d;
	for (m = 1; m <= 500; m++) {
		double del;

		/* even step */
		h *= lentz_step(m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)), &c, &d);
		/* odd step */
		del = lentz_step(-(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
				 &c, &d);
		h *= del;
		if (fabs(del - 1) < eps)
			break;
	}
	return h;
}

/* Regularized incomplete beta I_x(a, b). */
static double beta_inc(double a, double b, double x)
{
	double front;

	if (x <= 0)
		return 0;
	if (x >= 1)
		return 1;
	front = exp(log_gamma(a + b) - log_gamma(a) - log_gamma(b) +
		    a * log(x) + b * log1p(-x));
	/* The fraction converges fast on this side of the mean; else swap. */
	if (x < (a + 1) / (a + b + 2))
		return front * beta_cf(a, b, x) / a;
	return 1 - front * beta_cf(b, a, 1 - x) / b;
}

/* Two-sided p-value of Student's t with df degrees of freedom. */
static double t_pvalue(double t, double df)
{
	double p;

	if (isnan(t))
		return 1;
	if (isinf(t))
		return 0;
	p = beta_inc(df / 2, 0.5, df / (df + t * t));
	return p > 1 ? 1 : p < 0 ? 0 : p;
}

/*
 * Mean and sample variance, around the first value: a constant run then
 * has exactly its value as mean and 0 as variance, which the tests below
 * rely on to tell "no change" from "a change without noise".
 */
static void mean_var(const double *x, size_t n, double *mean, double *var)
{
	double ref = x[0], s = 0, ss = 0, m;
	size_t i;

	for (i = 0; i < n; i++)
		s += x[i] - ref;
	m = s / n;
	for (i = 0; i < n; i++) {
		double dv = x[i] - ref - m;

		ss += dv * dv;
	}
	*mean = ref + m;
	*var = n > 1 ? ss / (n - 1) : 0;
}

/* Welch's t-test between a[0..na) and b[0..nb), two-sided. */
static double welch_p(const double *a, size_t na, const double *b, size_t nb)
{
	double ma, va, mb, vb, sa, sb, se2, den, df, t, p;

	if (na < 2 || nb < 2)
		return 1;
	mean_var(a, na, &ma, &va);
	mean_var(b, nb, &mb, &vb);
	sa = va / na;
	sb = vb / nb;
	se2 = sa + sb;
	if (!(se2 > 0))
		return ma == mb ? 1 : 0;
	t = (mb - ma) / sqrt(se2);
	/* Welch-Satterthwaite; at least min(na, nb) - 1. */
	den = sa * sa / (na - 1) + sb * sb / (nb - 1);
	df = se2 * se2 / den;
	if (!isfinite(df) || df < 1)
		df = (double)(na < nb ? na : nb) - 1;
	p = t_pvalue(t, df);
	return isnan(p) ? 1 : p;
}

/* Working state of one detect_changes() call. */

struct sample {
	double	v;
	int	after;		/* on the new level's side */
};

struct cand {
	size_t	idx;
	double	p, rel, mwu, old_med, new_med;
};

struct det {
	const struct detect_point	*pts;
	const struct detect_config	*cfg;
	size_t		n;
	double		*x;		/* per-commit medians */
	double		*dist;		/* (2 window + 1)^2, dist_prefix() */
	size_t		org, l1;	/* what dist covers: x[org..org + l1 - 1) */
	double		*sel;		/* n, for segment medians */
	struct sample	*pool;		/* raw samples of one U test */
	size_t		*bounds;	/* splits of one window, with its ends */
	unsigned char	*is_cand;	/* n: proposed by some window */
	struct cand	*cps;
	size_t		ncp;
	double		noise;		/* NAN: not known */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_sample(const void *a, const void *b)
{
	return cmp_double(&((const struct sample *)a)->v, &((const struct sample *)b)->v);
}

/* Median of x[lo..hi), hi > lo. */
static double seg_median(struct det *d, size_t lo, size_t hi)
{
	size_t k = hi - lo;

	memcpy(d->sel, d->x + lo, k * sizeof(*d->sel));
	qsort(d->sel, k, sizeof(*d->sel), cmp_double);
	return k % 2 ? d->sel[k / 2] : (d->sel[k / 2 - 1] + d->sel[k / 2]) / 2;
}

static double rel_change(double old, double new)
{
	if (old == new)
		return 0;
	if (old == 0)
		return new > 0 ? INFINITY : -INFINITY;
	return (new - old) / fabs(old);
}

/*
 * Pair distance sums of x[org..org + len): dist[i * (len + 1) + j] is the
 * sum of |x[a] - x[b]| over a < i, b < j (offsets from org), so that any
 * block of the distance matrix sums in O(1).
 */
static void dist_prefix(struct det *d, size_t org, size_t len)
{
	const double *x = d->x + org;
	size_t l1 = len + 1, i, j;
	double *p = d->dist;

	for (j = 0; j < l1; j++)
		p[j] = 0;
	for (i = 1; i < l1; i++) {
		double row = 0;

		p[i * l1] = 0;
		for (j = 1; j < l1; j++) {
			row += fabs(x[i - 1] - x[j - 1]);
			p[i * l1 + j] = p[(i - 1) * l1 + j] + row;
		}
	}
	d->org = org;
	d->l1 = l1;
}

/* Sum of |x[a] - x[b]| over a in [a0, a1), b in [b0, b1), absolute indices. */
static double dist_block(const struct det *d, size_t a0, size_t a1, size_t b0, size_t b1)
{
	const double *p = d->dist;
	size_t l1 = d->l1;

	a0 -= d->org;
	a1 -= d->org;
	b0 -= d->org;
	b1 -= d->org;
	return p[a1 * l1 + b1] - p[a0 * l1 + b1] - p[a1 * l1 + b0] + p[a0 * l1 + b0];
}

/*
 * Energy statistic (alpha = 1) of x[s..t) against x[t..k):
 *	Q = m r / (m + r) * (2 mean|L - R| - mean|L - L'| - mean|R - R'|)
 * with m = t - s and r = k - t, both >= 2.
 */
static double qstat(const struct det *d, size_t s, size_t t, size_t k)
{
	double m = (double)(t - s), r = (double)(k - t);
	double within_l = dist_block(d, s, t, s, t) / (m * (m - 1));
	double within_r = dist_block(d, t, k, t, k) / (r * (r - 1));
	double between = dist_block(d, s, t, t, k) / (m * r);

	return m * r / (m + r) * (2 * between - within_l - within_r);
}

/*
 * The best split tau of x[lo..hi), inside the range dist_prefix() covered:
 * the largest Q of [lo, tau) against [tau, kappa), at least min_size points
 * each.  With search, kappa runs up to hi as in Matteson & James, so that a
 * step followed by another one inside the range is still seen against the
 * level it left; without, kappa is hi.  False when the range is too short.
 */
static bool best_split(const struct det *d, size_t lo, size_t hi, bool search,
		       size_t *tau, size_t *kappa)
{
	size_t ms = d->cfg->min_size, t, k;
	double best = -INFINITY;

	if (hi < lo || hi - lo < 2 * ms)
		return false;
	*tau = lo + ms;
	*kappa = hi;
	for (t = lo + ms; t + ms <= hi; t++) {
		for (k = search ? t + ms : hi; k <= hi; k++) {
			double q = qstat(d, lo, t, k);

			if (q > best) {
				best = q;
				*tau = t;
				*kappa = k;
			}
		}
	}
	return true;
}

/*
 * Two-sided Mann-Whitney U between the raw samples of commits [a, t) and
 * [t, b): normal approximation with mid-ranks, the tie correction of the
 * variance and a continuity correction.  A commit without samples counts
 * its median as one.
 */
static double mwu_pool(struct sample *pool, size_t m);

static double mwu_p(struct det *d, size_t a, size_t t, size_t b)
{
	struct sample *pool = d->pool;
	size_t m = 0, i, j;

	for (i = a; i < b; i++) {
		const struct detect_point *p = &d->pts[i];
		int after = i >= t;

		if (!p->nsamples) {
			pool[m].v = p->median;
			pool[m++].after = after;
			continue;
		}
		for (j = 0; j < p->nsamples; j++) {
			pool[m].v = p->samples[j];
			pool[m++].after = after;
		}
	}
	return mwu_pool(pool, m);
}

double detect_mwu(const double *a, size_t na, const double *b, size_t nb)
{
	struct sample *pool = calloc(na + nb ? na + nb : 1, sizeof(*pool));
	double p;

	if (!pool)
		return NAN;
	for (size_t i = 0; i < na; i++)
		pool[i].v = a[i];
	for (size_t i = 0; i < nb; i++) {
		pool[na + i].v = b[i];
		pool[na + i].after = 1;
	}
	p = mwu_pool(pool, na + nb);
	free(pool);
	return p;
}

/* The U test's p-value over m samples, each marked with its side. */
static double mwu_pool(struct sample *pool, size_t m)
{
	double n1 = 0, n2 = 0, r1 = 0, ties = 0, nn, u, var, z;
	size_t i, j, k;

	qsort(pool, m, sizeof(*pool), cmp_sample);
	for (i = 0; i < m; i = j) {
		double rank, cnt, before = 0;

		for (j = i; j < m && pool[j].v == pool[i].v; j++)
			;
		/* ranks i + 1 .. j share their mean */
		rank = ((double)i + 1 + (double)j) / 2;
		for (k = i; k < j; k++)
			before += !pool[k].after;
		r1 += rank * before;
		n1 += before;
		n2 += (double)(j - i) - before;
		cnt = (double)(j - i);
		ties += cnt * cnt * cnt - cnt;
	}
	if (!n1 || !n2)
		return 1;
	nn = n1 + n2;
	u = r1 - n1 * (n1 + 1) / 2;
	var = n1 * n2 / 12 * ((nn + 1) - ties / (nn * (nn - 1)));
	if (!(var > 0))
		return 1;
	z = fabs(u - n1 * n2 / 2) - 0.5;
	if (z < 0)
		z = 0;
	return erfc(z / sqrt(var) / SQRT2);
}

static size_t cand_lo(const struct det *d, size_t i)
{
	return i ? d->cps[i - 1].idx : 0;
}

static size_t cand_hi(const struct det *d, size_t i)
{
	return i + 1 < d->ncp ? d->cps[i + 1].idx : d->n;
}

/* Tests candidate i against the segments up to its neighbours. */
static void cand_eval(struct det *d, size_t i)
{
	struct cand *c = &d->cps[i];
	size_t lo = cand_lo(d, i), hi = cand_hi(d, i), t = c->idx;
	size_t w = d->cfg->window, ms = d->cfg->min_size;

	c->old_med = seg_median(d, lo, t);
	c->new_med = seg_median(d, t, hi);
	c->rel = rel_change(c->old_med, c->new_med);
	if (t - lo < ms || hi - t < ms) {
		/* Too short to say anything: the first to go. */
		c->p = 1;
		c->mwu = 1;
		return;
	}
	c->p = welch_p(d->x + lo, t - lo, d->x + t, hi - t);
	c->mwu = mwu_p(d, t - lo > w ? t - w : lo, t, hi - t > w ? t + w : hi);
}

static void cand_remove(struct det *d, size_t i)
{
	memmove(&d->cps[i], &d->cps[i + 1], (d->ncp - i - 1) * sizeof(*d->cps));
	d->ncp--;
	/* Both neighbours now reach further. */
	if (i > 0)
		cand_eval(d, i - 1);
	if (i < d->ncp)
		cand_eval(d, i);
}

/*
 * How far a candidate's step is above the least that counts (1: exactly
 * at it): noise_factor noises when the noise is known, else min_magnitude.
 */
static double size_margin(const struct det *d, const struct cand *c)
{
	const struct detect_config *cfg = d->cfg;
	double step = fabs(c->new_med - c->old_med);

	if (!isnan(d->noise)) {
		if (d->noise == 0)
			return step > 0 ? INFINITY : 0;
		return step / (cfg->noise_factor * d->noise);
	}
	if (cfg->min_magnitude == 0)
		return INFINITY;
	return fabs(c->rel) / cfg->min_magnitude;
}

/* Median of v[0..k), sorting it; k > 0. */
static double median_sort(double *v, size_t k)
{
	qsort(v, k, sizeof(*v), cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/*
 * The noise of the per-commit medians, the larger of two estimates:
 *  - between commits, from the median of |x[i+1] - x[i]|, which a few
 *    steps hardly move (a difference of two values of sigma s has sigma
 *    s * sqrt(2), and its median absolute value is 0.6745 of that); over
 *    a dozen or two commits it is often half the truth;
 *  - within commits, from the median over commits of their samples'
 *    standard deviation, over sqrt(samples) and times 1.2533 (the sigma
 *    of a median of normal samples); runs of one commit that vary more
 *    between them than within leave it low, never high.
 * NAN when noise_factor is 0 or there are too few points.
 */
static double series_noise(struct det *d)
{
	size_t i, k = d->n - 1, m = 0;
	double between, within = 0;

	if (d->cfg->noise_factor == 0 || d->n < d->cfg->noise_points)
		return NAN;
	for (i = 0; i < k; i++)
		d->sel[i] = fabs(d->x[i + 1] - d->x[i]);
	between = median_sort(d->sel, k) / (0.674489750196 * M_SQRT2);

	for (i = 0; i < d->n; i++) {
		const struct detect_point *p = &d->pts[i];
		double mean, var;

		if (p->nsamples < 2)
			continue;
		mean_var(p->samples, p->nsamples, &mean, &var);
		d->sel[m++] = sqrt(var) * 1.2533141373 / sqrt((double)p->nsamples);
	}
	if (m)
		within = median_sort(d->sel, m);
	return fmax(between, within);
}

/*
 * Drops the weakest candidate until all pass: the least significant first,
 * then the smallest change, then the worst confirmation.  One at a time,
 * since each removal changes what its neighbours are compared with.
 */
static void merge(struct det *d)
{
	const struct detect_config *cfg = d->cfg;
	struct cand *c = d->cps;

	while (d->ncp) {
		size_t i, w = 0;

		for (i = 1; i < d->ncp; i++)
			if (c[i].p > c[w].p ||
			    (c[i].p == c[w].p && fabs(c[i].rel) < fabs(c[w].rel)))
				w = i;
		if (c[w].p >= cfg->max_pvalue) {
			cand_remove(d, w);
			continue;
		}
		w = 0;
		for (i = 1; i < d->ncp; i++)
			if (size_margin(d, &c[i]) < size_margin(d, &c[w]))
				w = i;
		if (size_margin(d, &c[w]) < 1) {
			cand_remove(d, w);
			continue;
		}
		w = 0;
		for (i = 1; i < d->ncp; i++)
			if (c[i].mwu > c[w].mwu)
				w = i;
		if (cfg->mwu_alpha < 1 && c[w].mwu >= cfg->mwu_alpha) {
			cand_remove(d, w);
			continue;
		}
		break;
	}
}

/*
 * Moves each survivor to the best split between its neighbours, at most
 * window points each side.  A window that saw only the start of a step, or
 * two candidates for one step merged into the wrong one, end up here one
 * or two commits off.  True when one moved.
 */
static bool refine(struct det *d)
{
	size_t i, w = d->cfg->window;
	bool moved = false;

	for (i = 0; i < d->ncp; i++) {
		size_t lo = cand_lo(d, i), hi = cand_hi(d, i), t = d->cps[i].idx, tau, kappa;

		if (t - lo > w)
			lo = t - w;
		if (hi - t > w)
			hi = t + w;
		dist_prefix(d, lo, hi - lo);
		if (best_split(d, lo, hi, false, &tau, &kappa) && tau != t) {
			d->cps[i].idx = tau;
			moved = true;
		}
	}
	if (moved)
		for (i = 0; i < d->ncp; i++)
			cand_eval(d, i);
	return moved;
}

/* Hierarchical E-divisive inside x[ws..we): candidates into is_cand. */
static void split_window(struct det *d, size_t ws, size_t we, double alpha)
{
	size_t *b = d->bounds, nb = 2;

	b[0] = ws;
	b[1] = we;
	dist_prefix(d, ws, we - ws);
	for (;;) {
		size_t s, best_s = 0, best_t = 0;
		double best_q = -INFINITY;
		bool found = false;

		/* The strongest significant split of any segment goes first. */
		for (s = 0; s + 1 < nb; s++) {
			size_t tau, kappa;
			double q;

			if (!best_split(d, b[s], b[s + 1], true, &tau, &kappa))
				continue;
			if (welch_p(d->x + b[s], tau - b[s], d->x + tau, kappa - tau) >= alpha)
				continue;
			q = qstat(d, b[s], tau, kappa);
			if (!found || q > best_q) {
				found = true;
				best_q = q;
				best_s = s;
				best_t = tau;
			}
		}
		if (!found)
			break;
		memmove(&b[best_s + 2], &b[best_s + 1], (nb - best_s - 1) * sizeof(*b));
		b[best_s + 1] = best_t;
		nb++;
		d->is_cand[best_t] = 1;
	}
}

static int check_input(const struct detect_point *pts, size_t n, size_t *total)
{
	size_t i, j, sum = 0;

	for (i = 0; i < n; i++) {
		const struct detect_point *p = &pts[i];

		if (!isfinite(p->median) || (p->nsamples && !p->samples))
			return -EINVAL;
		for (j = 0; j < p->nsamples; j++)
			if (!isfinite(p->samples[j]))
				return -EINVAL;
		if (sum > SIZE_MAX / sizeof(struct sample) - (p->nsamples ? p->nsamples : 1))
			return -EINVAL;
		sum += p->nsamples ? p->nsamples : 1;
	}
	*total = sum;
	return 0;
}

static void det_free(struct det *d)
{
	free(d->x);
	free(d->dist);
	free(d->sel);
	free(d->pool);
	free(d->bounds);
	free(d->is_cand);
	free(d->cps);
}

int detect_changes(const struct detect_point *pts, size_t n, const struct detect_config *cfg,
		   struct detect_change *out, size_t max)
{
	struct det d = { .pts = pts, .cfg = cfg, .n = n };
	size_t i, w, side, step, ws, total, ncand, round;
	double alpha;
	int ret;

	ret = detect_config_check(cfg);
	if (ret)
		return ret;
	if ((n && !pts) || (max && !out) || n > INT_MAX)
		return -EINVAL;
	ret = check_input(pts, n, &total);
	if (ret)
		return ret;
	if (n < 2 * (size_t)cfg->min_size)
		return 0;

	w = cfg->window < n ? cfg->window : n;
	d.x = malloc(n * sizeof(*d.x));
	/* refine() looks at up to window points each side */
	side = 2 * w < n ? 2 * w + 1 : n + 1;
	if (side > SIZE_MAX / sizeof(*d.dist) / side) {
		ret = -ENOMEM;
		goto out;
	}
	d.dist = malloc(side * side * sizeof(*d.dist));
	d.sel = malloc(n * sizeof(*d.sel));
	d.pool = malloc(total * sizeof(*d.pool));
	d.bounds = malloc((w + 2) * sizeof(*d.bounds));
	d.is_cand = calloc(n, 1);
	if (!d.x || !d.dist || !d.sel || !d.pool || !d.bounds || !d.is_cand) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		d.x[i] = pts[i].median;
	d.noise = series_noise(&d);

	/* Windows overlapping by half; the last one ends at n. */
	alpha = cfg->max_pvalue * 10 < 1 ? cfg->max_pvalue * 10 : 1;
	step = w / 2;
	for (ws = 0;; ws += step) {
		if (ws + w >= n) {
			split_window(&d, n - w, n, alpha);
			break;
		}
		split_window(&d, ws, ws + w, alpha);
	}

	for (ncand = 0, i = 0; i < n; i++)
		ncand += d.is_cand[i];
	d.cps = calloc(ncand ? ncand : 1, sizeof(*d.cps));
	if (!d.cps) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (d.is_cand[i])
			d.cps[d.ncp++].idx = i;
	for (i = 0; i < d.ncp; i++)
		cand_eval(&d, i);

	for (round = 0;; round++) {
		merge(&d);
		if (round == MAX_ROUNDS || !refine(&d))
			break;
	}

	for (i = 0; i < d.ncp && i < max; i++) {
		const struct cand *c = &d.cps[i];

		out[i] = (struct detect_change){
			.index = c->idx,
			.old_median = c->old_med,
			.new_median = c->new_med,
			.rel_change = c->rel,
			.pvalue = c->p,
			.mwu_pvalue = c->mwu,
			.noise = d.noise,
			.effect = isnan(d.noise) ? NAN : d.noise == 0 ? INFINITY :
				  fabs(c->new_med - c->old_med) / d.noise,
		};
	}
	ret = (int)i;
out:
	det_free(&d);
	return ret;
}
