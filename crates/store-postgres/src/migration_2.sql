-- Migration 2: how many times each outbox event was handed out, so that
-- operators (and the cluster test) can see that every event was claimed
-- exactly once.
ALTER TABLE outbox ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
