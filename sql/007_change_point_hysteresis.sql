-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 7: a change point keeps its id as data arrives.
--
-- Detection after a submission looks at a window of the line around the
-- commit sent (service/store.c) and matches what it finds to the change
-- points already there: the same direction within detect_min_size commits
-- is the same change point, moved if it must be.  One no longer found is
-- marked weakened, with the time, not removed; found again, it is no
-- longer weakened.  Only a retraction, which takes its evidence away,
-- removes a change point nobody had looked at.  noise and effect are the
-- line's noise (robust sigma of its per-commit medians) and the step in
-- noises, as detection saw them.
ALTER TABLE change_points
	ADD COLUMN weakened timestamptz,
	ADD COLUMN noise double precision,
	ADD COLUMN effect double precision;
