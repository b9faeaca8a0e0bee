-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 2: a series' points as detection and the plots
-- both see them.  Per series, host class and commit, the raw samples of
-- every run of that commit pooled; a point's value is their median.
CREATE VIEW commit_samples AS
	SELECT r.series_id, h.host_class, c.id AS commit_id, c.committed,
	       array_agg(s.v) AS samples
	FROM results r
	JOIN runs u ON u.id = r.run_id
	JOIN hosts h ON h.id = u.host_id
	JOIN commits c ON c.id = u.commit_id
	CROSS JOIN LATERAL unnest(r.samples) AS s(v)
	GROUP BY r.series_id, h.host_class, c.id;
