-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 8: alerts, what people triage.  One alert per
-- commit holds every change point, on every series and line, whose new level
-- starts there (Perfherder's alert summaries).  Its state, bug link and note
-- are people's; the webhook is told of each new alert once, after
-- webhook_settle seconds, so that the series of one submission join it.
--
-- A change point keeps the commit of the line's previous point
-- (prev_commit_id): when the bench skipped commits, the step lies somewhere
-- in prev..commit, and the alert shows that range.
CREATE TABLE alerts (
	id		bigserial PRIMARY KEY,
	commit_id	bigint NOT NULL UNIQUE REFERENCES commits (id),
	state		text NOT NULL DEFAULT 'new'
			CHECK (state IN ('new', 'acknowledged', 'invalid', 'fixed')),
	bug_url		text NOT NULL DEFAULT ''
			CHECK (bug_url = '' OR (bug_url ~ '^https?://[^[:space:]]+$'
						AND length(bug_url) <= 1000)),
	note		text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
	created		timestamptz NOT NULL DEFAULT now(),
	updated		timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE change_points
	ADD COLUMN alert_id bigint REFERENCES alerts (id),
	ADD COLUMN prev_commit_id bigint REFERENCES commits (id);
INSERT INTO alerts (commit_id) SELECT DISTINCT commit_id FROM change_points;
UPDATE change_points p SET alert_id = a.id FROM alerts a WHERE a.commit_id = p.commit_id;
ALTER TABLE change_points ALTER COLUMN alert_id SET NOT NULL;
CREATE INDEX change_points_alert ON change_points (alert_id);

-- Notifications are of alerts now, their body made when sent.
DELETE FROM notifications WHERE delivered IS NULL;
ALTER TABLE notifications
	ALTER COLUMN change_point_id DROP NOT NULL,
	ALTER COLUMN body DROP NOT NULL,
	ADD COLUMN alert_id bigint REFERENCES alerts (id) ON DELETE CASCADE,
	ADD CONSTRAINT notifications_of_one CHECK ((change_point_id IS NULL) <> (alert_id IS NULL));

-- An alert as the webhook and the API show it: its change points, largest
-- first; url_commit and url_range as in the config (%s the sha; from, to).
-- first_parent is the earliest previous point of its lines: the step lies in
-- first_parent..commit.
CREATE FUNCTION alert_json(alert bigint, url_commit text, url_range text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('alert', a.id, 'commit', c.sha,
		'first_parent', fp.sha,
		'commit_url', CASE WHEN url_commit = '' THEN NULL
				  ELSE replace(url_commit, '%s', c.sha) END,
		'range_url', CASE WHEN url_range = '' OR fp.sha IS NULL THEN NULL
				 ELSE format(url_range, fp.sha, c.sha) END,
		'state', a.state, 'bug_url', a.bug_url, 'note', a.note,
		'created', a.created, 'page', '/alerts/' || a.id,
		'regressions', (SELECT count(*) FROM change_points p
				WHERE p.alert_id = a.id AND p.kind = 'regression'),
		'improvements', (SELECT count(*) FROM change_points p
				 WHERE p.alert_id = a.id AND p.kind = 'improvement'),
		'change_points', (SELECT coalesce(jsonb_agg(jsonb_build_object(
				'id', p.id, 'series', s.id, 'bench', s.bench, 'metric', s.metric,
				'backend', s.backend, 'params', s.params, 'unit', s.unit,
				'lower_is_better', s.lower_is_better, 'host_class', p.host_class,
				'machine', m.label, 'branch', p.branch, 'kind', p.kind,
				'old_median', p.old_median, 'new_median', p.new_median,
				'rel_change', p.rel_change, 'effect', p.effect, 'pvalue', p.pvalue,
				'state', p.state, 'weakened', p.weakened)
				ORDER BY abs(p.rel_change) DESC, p.id), '[]')
			FROM change_points p JOIN series s ON s.id = p.series_id
			JOIN machine_labels m ON m.id = p.machine_id WHERE p.alert_id = a.id))
	FROM alerts a JOIN commits c ON c.id = a.commit_id
	LEFT JOIN LATERAL (SELECT pc.sha FROM change_points p JOIN commits pc
			   ON pc.id = p.prev_commit_id WHERE p.alert_id = a.id
			   ORDER BY pc.gen, pc.committed, pc.id LIMIT 1) fp ON true
	WHERE a.id = alert
$$;
