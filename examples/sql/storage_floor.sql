-- The smallest entry the log's shape allows, and what it costs on disk with the log's indexes.
--
--   psql -h 127.0.0.1 -U postgres -d test -f examples/sql/storage_floor.sql
--
-- Needs `activity_log` (created by `activity_seaorm::schema::create_table`, e.g. by the workload
-- harness); copies its columns and indexes into a scratch table, fills it with 200,000 `updated`
-- entries of one boolean change by the system (no tenant, no actor, no request context: every
-- optional column NULL), and prints bytes per entry, heap and each index. Drops the table after.

\set ON_ERROR_STOP on
DROP TABLE IF EXISTS activity_log_storage_floor;
CREATE TABLE activity_log_storage_floor (LIKE activity_log INCLUDING ALL);

-- UUID v7 layout (48-bit millisecond time, version 7, random), as the library writes ids:
-- time-ordered, so the primary key appends on the right as it does in production.
INSERT INTO activity_log_storage_floor (id, created_at, is_system, scope, item_id, activity, detail)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || '7' || substr(md5(random()::text), 1, 19))::uuid,
       clock_timestamp(), true, 'Flag', (i % 2000)::text, 'updated',
       jsonb_build_object(
         'name', 'f' || (i % 2000), 'short_id', NULL, 'type', NULL,
         'changes', jsonb_build_array(jsonb_build_object(
           'type', 'Flag', 'action', 'changed', 'field', 'on', 'before', false, 'after', true)),
         'trigger', NULL, 'context', NULL)
FROM generate_series(1, 200000) AS i;
VACUUM ANALYZE activity_log_storage_floor;

SELECT 'total' AS part, pg_total_relation_size('activity_log_storage_floor') / 200000 AS bytes_per_entry
UNION ALL
SELECT 'heap', pg_relation_size('activity_log_storage_floor') / 200000
UNION ALL
SELECT 'detail (jsonb, avg)', avg(pg_column_size(detail))::bigint FROM activity_log_storage_floor
UNION ALL
SELECT * FROM (
  SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) / 200000
  FROM pg_index WHERE indrelid = 'activity_log_storage_floor'::regclass ORDER BY 2 DESC) AS idx;

DROP TABLE activity_log_storage_floor;
