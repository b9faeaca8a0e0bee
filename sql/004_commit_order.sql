-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 4: commits in the order of their first-parent
-- chain, not of committer time (rebases and clocks make the two disagree).
--
-- gen is a commit's place: its parent's gen + 1 when the service has its
-- parent; otherwise (the bench skipped the commits between, or the parent
-- is not sent yet) 1 + the highest gen of the commits committed at or
-- before it.  A parent arriving after its children moves them, and their
-- descendants, after it.  Series are drawn and detected in (gen,
-- committed, id) order.  Existing commits keep their committer-time order.

ALTER TABLE commits ADD COLUMN gen bigint;
UPDATE commits SET gen = o.n
	FROM (SELECT id, row_number() OVER (ORDER BY committed, id) AS n FROM commits) o
	WHERE o.id = commits.id;
CREATE INDEX commits_gen ON commits (gen, committed, id);
CREATE INDEX commits_parent ON commits (parent_sha);

CREATE OR REPLACE VIEW commit_samples AS
	SELECT r.series_id, h.host_class, c.id AS commit_id, c.committed,
	       array_agg(s.v) AS samples, c.gen
	FROM results r
	JOIN runs u ON u.id = r.run_id
	JOIN hosts h ON h.id = u.host_id
	JOIN commits c ON c.id = u.commit_id
	CROSS JOIN LATERAL unnest(r.samples) AS s(v)
	WHERE u.retracted IS NULL AND NOT u.dirty
	GROUP BY r.series_id, h.host_class, c.id;
