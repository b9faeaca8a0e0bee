/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Change point detection on one benchmark series.
 *
 * The series is one value per commit, in commit order: the median of that
 * commit's raw samples.  detect_changes() finds the commits where the level
 * moves:
 *
 *  1. Split: the series is cut into windows of cfg->window points that
 *     overlap by half.  In each window E-divisive means (Matteson & James,
 *     energy statistic with alpha = 1) proposes the split tau, with the
 *     points [start, tau) against [tau, kappa) for the best kappa, that
 *     best separates the two sides; Welch's t-test between those sides
 *     decides whether it is kept (at 10 * max_pvalue: the merge below is
 *     the real filter), and the split recurses into both sides.
 *  2. Merge: each candidate is tested again, Welch's t-test on the whole
 *     segments between its neighbouring candidates.  The weakest one is
 *     dropped (p >= max_pvalue first, then a change under noise_factor noises
 *     (min_magnitude without a noise),
 *     then the Mann-Whitney U confirmation, mwu p >= mwu_alpha), its
 *     neighbours are tested again, and so on until every survivor passes.
 *     Survivors are then moved to the best split between their neighbours
 *     (at most window points each side), and the merge runs again if any
 *     moved.
 *  3. Confirmation, in the merge: two-sided Mann-Whitney U (normal approx.,
 *     tie and continuity corrected) on the pooled raw samples of the up to
 *     cfg->window commits each side of the change, within its neighbours.
 *
 * Cost is O(n * window^2) and memory O(n + window^2 + total samples).  The
 * functions keep no state: they are safe to call from several threads.
 */
#ifndef KMMU_DETECT_H
#define KMMU_DETECT_H

#include <stdbool.h>
#include <stddef.h>

struct detect_config {
	/* Welch's t-test significance a change point must reach. */
	double		max_pvalue;	/* default 0.001, in (0, 1] */
	/*
	 * Minimum |new - old| of the medians on both sides, in units of the
	 * series' noise: the robust spread of its per-commit medians, from
	 * the median of their successive differences (steps move only a few
	 * of those).  0 turns it off.
	 */
	double		noise_factor;	/* default 3, >= 0 */
	/*
	 * Minimum |new - old| / |old| instead, when the noise cannot be
	 * told: noise_factor is 0 or the series has under noise_points.
	 */
	double		min_magnitude;	/* default 0.02, >= 0 */
	unsigned int	noise_points;	/* default 12, >= 3 */
	/* Mann-Whitney U on the raw samples; 1 keeps every change point. */
	double		mwu_alpha;	/* default 0.001, in (0, 1] */
	/* Points per split window, and per side of the confirmation. */
	unsigned int	window;		/* default 30, >= 2 * min_size */
	/* Minimum points (commits) on each side of a change point. */
	unsigned int	min_size;	/* default 3, >= 2 */
};

void detect_config_default(struct detect_config *cfg);
/* 0, or -EINVAL when a field is out of the range given above. */
int detect_config_check(const struct detect_config *cfg);

/*
 * One commit of the series: its median and its raw samples.  samples may be
 * NULL when nsamples is 0; the median then stands for the commit's only
 * sample in the Mann-Whitney U test.
 */
struct detect_point {
	double		median;
	const double	*samples;
	size_t		nsamples;
};

struct detect_change {
	size_t		index;		/* first point (commit) of the new level */
	/*
	 * Medians of the per-commit medians of the segments on each side,
	 * a segment ending at the neighbouring change point.
	 */
	double		old_median, new_median;
	/*
	 * (new - old) / |old|: its sign is that of new - old even for a
	 * negative old.  When old is 0 it is +INFINITY or -INFINITY (and
	 * passes any min_magnitude); callers storing it as JSON must check.
	 */
	double		rel_change;
	double		pvalue;		/* Welch's t-test, per-commit medians */
	/*
	 * The series' noise (robust sigma of per-commit medians, NAN when
	 * it cannot be told) and |new - old| / noise, the effect size
	 * (INFINITY on a series without noise, NAN without noise).
	 */
	double		noise, effect;
	double		mwu_pvalue;	/* Mann-Whitney U, raw samples */
};

/*
 * Finds the change points of pts[0..n).  Writes at most max of them to out,
 * sorted by index, and returns how many it wrote.  When there are more, the
 * first max (lowest index) are written: detect_max_changes() is a max that
 * is always enough.  Returns -EINVAL for a bad config, pts or out NULL where
 * needed, a non-finite median or sample, or n > INT_MAX; -ENOMEM.
 * Fewer than 2 * min_size points never have a change point.
 */
int detect_changes(const struct detect_point *pts, size_t n, const struct detect_config *cfg,
		   struct detect_change *out, size_t max);

/* Upper bound on the number of change points of a series of n points. */
size_t detect_max_changes(size_t n, const struct detect_config *cfg);

enum detect_kind {
	DETECT_REGRESSION,
	DETECT_IMPROVEMENT,
};

/*
 * Whether the change made the metric worse, from the medians' direction;
 * equal medians (only with min_magnitude 0) are an improvement.
 */
enum detect_kind detect_kind(const struct detect_change *c, bool lower_is_better);

/*
 * Two-sided Mann-Whitney U p-value between samples a and b (normal
 * approximation, mid-ranks, tie and continuity corrections); 1 when either
 * is empty, NaN when out of memory.
 */
double detect_mwu(const double *a, size_t na, const double *b, size_t nb);

#endif
