-- An experiment for the workload harness (`BENCH_PEER_EXTRA_SQL`): the trigger peer's table
-- with as many btree indexes as the log's entries touch in the harness (five with its key), so
-- the per-row bulk and the trigger are compared index for index.
CREATE INDEX IF NOT EXISTS peer_audit_log_actor ON peer_audit_log (actor, created_at DESC);
CREATE INDEX IF NOT EXISTS peer_audit_log_table ON peer_audit_log (table_name, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS peer_audit_log_time ON peer_audit_log (created_at DESC, id DESC);
