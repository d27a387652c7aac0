-- Synthetic activity_log rows for PostgreSQL benchmarks and plan tests, in one statement.
-- {rows} and {hot} are replaced by the caller (see `seed_sql` in examples/read_bench.rs and
-- tests/tests/read_plans.rs). Deterministic: every value is a hash of the row number.
INSERT INTO activity_log (id, created_at, organization_id, team_id, user_id, user_name,
    impersonated_by, was_impersonated, is_system, scope, item_id, activity, detail,
    request_id, correlation_id, ip_address, user_agent, client)
SELECT
    (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(g::text), 1, 19))::uuid,
    at,
    'org-' || (team % 40),
    'team-' || team,
    CASE WHEN sys THEN NULL ELSE 'user-' || (h3 % 2000) END,
    CASE WHEN sys THEN NULL ELSE 'User ' || (h3 % 2000) END,
    CASE WHEN h3 % 97 = 0 THEN 'staff-1' END,
    h3 % 97 = 0,
    sys,
    scope,
    item,
    activity,
    jsonb_build_object(
        'name', scope || ' ' || item,
        'short_id', NULL,
        'type', NULL,
        'changes', CASE WHEN activity = 'updated' THEN jsonb_build_array(jsonb_build_object(
            'type', scope, 'action', 'changed', 'field', 'enabled',
            'before', false, 'after', true)) ELSE '[]'::jsonb END,
        'trigger', NULL,
        'context', NULL),
    'req-' || g,
    substr(md5((g / 3)::text), 1, 32),
    '10.0.' || (h3 % 256) || '.' || (g % 256),
    'Mozilla/5.0 (X11; Linux x86_64) bench',
    'web'
FROM (
    SELECT g, h3,
        CASE WHEN g <= {hot} THEN 7 ELSE h1 % 200 END AS team,
        CASE WHEN g <= {hot} THEN 'Scope3' ELSE 'Scope' || (h2 % 50) END AS scope,
        CASE WHEN g <= {hot} THEN 'hot' ELSE ((h2 / 50) % 5000)::text END AS item,
        timestamptz '2025-01-01 00:00:00+00'
            + (h4 % 31536000000000) * interval '1 microsecond' AS at,
        h3 % 20 = 0 AS sys,
        CASE h3 % 10 WHEN 0 THEN 'created' WHEN 1 THEN 'deleted' ELSE 'updated' END AS activity
    FROM (
        SELECT g,
            hashint8extended(g, 1) & 9223372036854775807 AS h1,
            hashint8extended(g, 2) & 9223372036854775807 AS h2,
            hashint8extended(g, 3) & 9223372036854775807 AS h3,
            hashint8extended(g, 4) & 9223372036854775807 AS h4
        FROM generate_series(1, {rows}::bigint) AS g
    ) AS hashed
) AS shaped
ORDER BY at;
