-- Synthetic activity_log rows for PostgreSQL benchmarks and plan tests, in one statement.
-- The caller replaces {rows} (the log's size), {hot} (entries of the one hot item: `team-7` /
-- `Scope3` / `hot`, one in every {rows}/{hot} rows) and {first}..{last} (the row numbers this
-- statement writes: 1..{rows} at once, or consecutive slices, which are consecutive stretches of
-- 2025). `created_at` grows with the row number (each row at a hashed instant of its own slot of
-- the year), so the rows go in in time order, as a live log's do. Deterministic: every value is
-- a hash of the row number. `detail` is stored as the library stores it (the compact form).
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
    jsonb_build_object('name', scope || ' ' || item)
        || CASE WHEN activity = 'updated' THEN jsonb_build_object('changes', jsonb_build_array(
            jsonb_build_object('action', 'changed', 'field', 'enabled',
                'before', false, 'after', true))) ELSE '{}'::jsonb END,
    'req-' || g,
    substr(md5((g / 3)::text), 1, 32),
    '10.0.' || (h3 % 256) || '.' || (g % 256),
    'Mozilla/5.0 (X11; Linux x86_64) bench',
    'web'
FROM (
    SELECT g, h3,
        CASE WHEN hot THEN 7 ELSE h1 % 200 END AS team,
        CASE WHEN hot THEN 'Scope3' ELSE 'Scope' || (h2 % 50) END AS scope,
        CASE WHEN hot THEN 'hot' ELSE ((h2 / 50) % 5000)::text END AS item,
        timestamptz '2025-01-01 00:00:00+00'
            + ((g - 1) * slot + h4 % slot) * interval '1 microsecond' AS at,
        h3 % 20 = 0 AS sys,
        CASE h3 % 10 WHEN 0 THEN 'created' WHEN 1 THEN 'deleted' ELSE 'updated' END AS activity
    FROM (
        SELECT g,
            (g - 1) % greatest({rows}::bigint / greatest({hot}::bigint, 1), 1) = 0
                AND {hot}::bigint > 0 AS hot,
            31536000000000 / {rows}::bigint AS slot,
            hashint8extended(g, 1) & 9223372036854775807 AS h1,
            hashint8extended(g, 2) & 9223372036854775807 AS h2,
            hashint8extended(g, 3) & 9223372036854775807 AS h3,
            hashint8extended(g, 4) & 9223372036854775807 AS h4
        FROM generate_series({first}::bigint, {last}::bigint) AS g
    ) AS hashed
) AS shaped
ORDER BY at;
