-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 9: runs on kmmu's hardware vCPU (KMMU_BACKEND=hw).
--
-- A results document from the hw backend measures guest code the CPU runs
-- on kmmu's own tables: work of its own, so its series are apart from the
-- dev backend's (the series key has the backend already).
ALTER TABLE runs DROP CONSTRAINT runs_backend_check;
ALTER TABLE runs ADD CONSTRAINT runs_backend_check CHECK (backend IN ('dev', 'user', 'hw'));
