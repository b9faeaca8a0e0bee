-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 1: runs of the bench, the series they feed, and
-- what detection and people say about those series.
--
-- The daemon applies every sql/NNN_*.sql newer than the highest version in
-- schema_version, in one transaction, and records each one there.

-- A machine that ran the bench.  host_class groups machines whose figures
-- belong on one line of a plot: the CPU vendor (intel, amd, other).
CREATE TABLE hosts (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL,
	cpu_vendor	text NOT NULL,
	cpu_model	text NOT NULL,
	cores		integer NOT NULL CHECK (cores > 0),
	memory_bytes	bigint NOT NULL CHECK (memory_bytes > 0),
	kernel		text NOT NULL,
	host_class	text NOT NULL,
	first_seen	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (name, cpu_vendor, cpu_model, cores, memory_bytes, kernel)
);

-- Commits.  The bench reports each commit's committer time and first
-- parent; series are drawn and detected in the order of committer time,
-- then arrival (commits_order), which on a linear history is parent order.
CREATE TABLE commits (
	id		bigserial PRIMARY KEY,
	sha		text NOT NULL UNIQUE CHECK (sha ~ '^([0-9a-f]{40}|unknown)$'),
	committed	timestamptz NOT NULL,
	branch		text NOT NULL,
	parent_sha	text,
	first_seen	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commits_order ON commits (committed, id);

-- Who may submit: the token itself is never stored, only its SHA-256.
CREATE TABLE tokens (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	hash		bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
	created		timestamptz NOT NULL DEFAULT now(),
	revoked		boolean NOT NULL DEFAULT false
);

-- One results document.  digest is the SHA-256 of its canonical form
-- (sorted keys, no whitespace): the same document sent twice is one run.
CREATE TABLE runs (
	id		bigserial PRIMARY KEY,
	digest		bytea NOT NULL UNIQUE CHECK (length(digest) = 32),
	host_id		bigint NOT NULL REFERENCES hosts (id),
	commit_id	bigint NOT NULL REFERENCES commits (id),
	backend		text NOT NULL CHECK (backend IN ('dev', 'user')),
	spte_format	text NOT NULL,
	dirty		boolean NOT NULL,
	created		timestamptz NOT NULL,
	submitted	timestamptz NOT NULL DEFAULT now(),
	token_id	bigint NOT NULL REFERENCES tokens (id),
	document	jsonb NOT NULL
);
CREATE INDEX runs_commit ON runs (commit_id);

-- A figure measured on a machine, across commits: one line per host class
-- on its plot.  params_key is the canonical JSON of params, so that the
-- same options always name the same series.
CREATE TABLE series (
	id		bigserial PRIMARY KEY,
	bench		text NOT NULL,
	metric		text NOT NULL,
	backend		text NOT NULL,
	params		jsonb NOT NULL,
	params_key	text NOT NULL,
	unit		text NOT NULL,
	lower_is_better	boolean NOT NULL,
	-- Bumped whenever a point, a change point or its state changes: the
	-- plot cache is keyed by it.
	version		bigint NOT NULL DEFAULT 0,
	UNIQUE (bench, metric, backend, params_key)
);

CREATE TABLE floors (
	id		bigserial PRIMARY KEY,
	run_id		bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	driver_run	integer NOT NULL CHECK (driver_run >= 0),
	bench		text NOT NULL,
	metric		text NOT NULL,
	unit		text NOT NULL,
	entries		bigint NOT NULL,
	samples		double precision[] NOT NULL,
	median		double precision NOT NULL
);
CREATE INDEX floors_run ON floors (run_id);

CREATE TABLE results (
	id		bigserial PRIMARY KEY,
	run_id		bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	series_id	bigint NOT NULL REFERENCES series (id),
	driver_run	integer NOT NULL CHECK (driver_run >= 0),
	samples		double precision[] NOT NULL CHECK (cardinality(samples) > 0),
	median		double precision NOT NULL,
	floor_metric	text,
	floor_median	double precision
);
CREATE INDEX results_series ON results (series_id);
CREATE INDEX results_run ON results (run_id);

-- A change in a series' level for one host class, found by detection.
-- commit_id is the first commit of the new level.  People move it from
-- new to acknowledged, invalid (noise, a false alarm) or fixed.
CREATE TABLE change_points (
	id		bigserial PRIMARY KEY,
	series_id	bigint NOT NULL REFERENCES series (id),
	host_class	text NOT NULL,
	commit_id	bigint NOT NULL REFERENCES commits (id),
	old_median	double precision NOT NULL,
	new_median	double precision NOT NULL,
	rel_change	double precision NOT NULL,
	pvalue		double precision NOT NULL,
	mwu_pvalue	double precision NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('regression', 'improvement')),
	state		text NOT NULL DEFAULT 'new'
			CHECK (state IN ('new', 'acknowledged', 'invalid', 'fixed')),
	note		text NOT NULL DEFAULT '',
	detected	timestamptz NOT NULL DEFAULT now(),
	updated		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (series_id, host_class, commit_id)
);
CREATE INDEX change_points_state ON change_points (state);

-- Something that happened at a commit and explains a step: a kernel
-- upgrade, new hardware.  host_class and bench narrow where it applies
-- (NULL: everywhere).
CREATE TABLE annotations (
	id		bigserial PRIMARY KEY,
	commit_id	bigint NOT NULL REFERENCES commits (id),
	host_class	text,
	bench		text,
	text		text NOT NULL CHECK (length(text) BETWEEN 1 AND 1000),
	token_id	bigint NOT NULL REFERENCES tokens (id),
	created		timestamptz NOT NULL DEFAULT now()
);
