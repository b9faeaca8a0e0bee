-- SPDX-License-Identifier: GPL-2.0
-- kmmu-regressd, migration 5: notifications of new change points, queued in
-- the transaction that raises them and sent to webhook_url by one thread
-- (service/notify.c).  A change point withdrawn before its notification was
-- sent takes the notification with it.
CREATE TABLE notifications (
	id		bigserial PRIMARY KEY,
	change_point_id	bigint NOT NULL REFERENCES change_points (id) ON DELETE CASCADE,
	body		jsonb NOT NULL,
	created		timestamptz NOT NULL DEFAULT now(),
	attempts	integer NOT NULL DEFAULT 0,
	next_try	timestamptz NOT NULL DEFAULT now(),
	delivered	timestamptz,
	last_error	text
);
CREATE INDEX notifications_due ON notifications (next_try) WHERE delivered IS NULL;
