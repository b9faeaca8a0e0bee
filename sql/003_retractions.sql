-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 3: retracted runs, admin tokens, and dirty-tree
-- runs kept out of detection.
--
-- A run found bad (a broken host, a wrong build) is retracted by an admin
-- token: it stays stored, with who retracted it, when and why, but its
-- points leave the series, the plots and detection.  A run of a dirty tree
-- (uncommitted changes) measured code no commit holds: it is stored and
-- shown, never detected on.

ALTER TABLE tokens ADD COLUMN admin boolean NOT NULL DEFAULT false;

ALTER TABLE runs
	ADD COLUMN retracted timestamptz,
	ADD COLUMN retracted_by bigint REFERENCES tokens (id),
	ADD COLUMN retract_reason text
		CHECK (length(retract_reason) BETWEEN 1 AND 1000),
	ADD CONSTRAINT runs_retraction_whole CHECK (
		(retracted IS NULL) = (retracted_by IS NULL) AND
		(retracted IS NULL) = (retract_reason IS NULL));
CREATE INDEX runs_retracted ON runs (retracted) WHERE retracted IS NOT NULL;

CREATE OR REPLACE VIEW commit_samples AS
	SELECT r.series_id, h.host_class, c.id AS commit_id, c.committed,
	       array_agg(s.v) AS samples
	FROM results r
	JOIN runs u ON u.id = r.run_id
	JOIN hosts h ON h.id = u.host_id
	JOIN commits c ON c.id = u.commit_id
	CROSS JOIN LATERAL unnest(r.samples) AS s(v)
	WHERE u.retracted IS NULL AND NOT u.dirty
	GROUP BY r.series_id, h.host_class, c.id;
