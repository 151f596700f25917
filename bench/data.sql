-- The realistic mix of bench/run.sh (issue 19): 10,000 merchants
-- (m_z_1 .. m_z_10000) and 1,000,000 cards (tok_z_1 .. tok_z_1000000),
-- made on the server (INSERT ... SELECT generate_series: a few seconds).
-- The lookup cache's triggers are skipped for the load (one notification
-- per row otherwise), and one '*' at the end empties every cache.
-- Run as a superuser (session_replication_role), e.g.
--   txval_pg_psql PORT DIR < bench/data.sql

SET client_min_messages = warning;
SET session_replication_role = replica;

INSERT INTO merchants (id, status, max_amount, currencies)
    SELECT 'm_z_' || g, 'active', 1000000, '{USD,EUR}'
    FROM generate_series(1, 10000) AS g
ON CONFLICT (id) DO UPDATE SET status = 'active';

INSERT INTO cards (token, status, country)
    SELECT 'tok_z_' || g, 'active', 'US'
    FROM generate_series(1, 1000000) AS g
ON CONFLICT (token) DO NOTHING;


-- what a freshness run left blocked or suspended
UPDATE cards SET status = 'active'
    WHERE token LIKE 'tok_z\_%' AND status <> 'active';
UPDATE merchants SET status = 'active'
    WHERE id LIKE 'm_z\_%' AND status <> 'active';

RESET session_replication_role;

ANALYZE merchants;
ANALYZE cards;

SELECT pg_notify('txval', '*');
