-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 6: a series' points are kept apart per machine and
-- per branch.  Pooling by CPU vendor made a swap of one AMD machine for
-- another look like a change of the code; pooling a branch's runs into
-- main's made a branch look like main's history.
--
-- A machine is the document's host.machine_id (a keyed hash of
-- /etc/machine-id, bench/README.md) together with the CPU vendor, model and
-- core count: the same disk moved to other hardware is another machine, a
-- kernel upgrade or a rename is not.  A document without machine_id (older
-- bench drivers) names its machine by host name, CPU vendor, model and
-- cores.  host_class (the vendor) stays, as a grouping for plots and
-- filters.  A line of a series is one machine and one branch; detection and
-- change points are per line.
CREATE TABLE machines (
	id		bigserial PRIMARY KEY,
	key		text NOT NULL UNIQUE,
	machine_id	text CHECK (machine_id ~ '^[0-9a-f]{32}$'),
	name		text NOT NULL,
	host_class	text NOT NULL,
	first_seen	timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE hosts ADD COLUMN machine bigint REFERENCES machines (id);
INSERT INTO machines (key, name, host_class)
	SELECT DISTINCT ON (k) k, name, host_class
	FROM (SELECT 'host:' || name || '|' || cpu_vendor || '|' || cpu_model || '|' || cores
		     AS k, name, host_class, id FROM hosts) h
	ORDER BY k, id;
UPDATE hosts SET machine = m.id FROM machines m
	WHERE m.key = 'host:' || hosts.name || '|' || hosts.cpu_vendor || '|' ||
		      hosts.cpu_model || '|' || hosts.cores;
ALTER TABLE hosts ALTER COLUMN machine SET NOT NULL;
-- A machine's name is the one it last reported.
ALTER TABLE hosts DROP CONSTRAINT hosts_name_cpu_vendor_cpu_model_cores_memory_bytes_kernel_key;
ALTER TABLE hosts ADD CONSTRAINT hosts_identity
	UNIQUE (machine, name, cpu_vendor, cpu_model, cores, memory_bytes, kernel);

ALTER TABLE runs ADD COLUMN branch text;
UPDATE runs SET branch = document->'commit'->>'branch';
ALTER TABLE runs ALTER COLUMN branch SET NOT NULL;
ALTER TABLE runs ADD CONSTRAINT runs_branch CHECK (length(branch) BETWEEN 1 AND 255);

-- Each machine once under its name, or name#id when machines share a name.
CREATE VIEW machine_labels AS
	SELECT id, name, host_class,
	       CASE WHEN count(*) OVER (PARTITION BY name) > 1 THEN name || '#' || id
		    ELSE name END AS label
	FROM machines;

DROP VIEW commit_samples;
CREATE VIEW commit_samples AS
	SELECT r.series_id, m.host_class, h.machine AS machine_id, u.branch,
	       m.label || ' ' || u.branch AS line, c.id AS commit_id, c.committed,
	       array_agg(s.v) AS samples, c.gen
	FROM results r
	JOIN runs u ON u.id = r.run_id
	JOIN hosts h ON h.id = u.host_id
	JOIN machine_labels m ON m.id = h.machine
	JOIN commits c ON c.id = u.commit_id
	CROSS JOIN LATERAL unnest(r.samples) AS s(v)
	WHERE u.retracted IS NULL AND NOT u.dirty
	GROUP BY r.series_id, m.host_class, h.machine, u.branch, m.label, c.id;

-- Change points per line.  Those nobody has looked at are found again at
-- start; one a person has triaged is kept on every line of its host class
-- that has runs of its commit.
ALTER TABLE change_points
	ADD COLUMN machine_id bigint REFERENCES machines (id),
	ADD COLUMN branch text,
	DROP CONSTRAINT change_points_series_id_host_class_commit_id_key;
DELETE FROM change_points WHERE state = 'new';
INSERT INTO change_points (series_id, host_class, commit_id, old_median, new_median,
			   rel_change, pvalue, mwu_pvalue, kind, state, note, detected,
			   updated, machine_id, branch)
	SELECT DISTINCT p.series_id, p.host_class, p.commit_id, p.old_median, p.new_median,
	       p.rel_change, p.pvalue, p.mwu_pvalue, p.kind, p.state, p.note, p.detected,
	       p.updated, s.machine_id, s.branch
	FROM change_points p
	JOIN commit_samples s ON s.series_id = p.series_id AND s.host_class = p.host_class
		AND s.commit_id = p.commit_id;
DELETE FROM change_points WHERE machine_id IS NULL;
ALTER TABLE change_points
	ALTER COLUMN machine_id SET NOT NULL,
	ALTER COLUMN branch SET NOT NULL,
	ADD CONSTRAINT change_points_line UNIQUE (series_id, machine_id, branch, commit_id);
