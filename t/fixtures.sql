-- Rows the t/ suite relies on (loaded by scripts/test.sh after the schema
-- and the demo seed; idempotent). Ids start with "t_" so they never clash
-- with the demo seed.

INSERT INTO merchants (id, status, max_amount, currencies) VALUES
    ('t_active',    'active',    NULL,    NULL),
    ('t_capped',    'active',    10000,   NULL),
    ('t_usd_eur',   'active',    NULL,    '{USD,EUR}'),
    ('t_empty_cur', 'active',    NULL,    '{}'),
    ('t_inactive',  'suspended', NULL,    NULL),
    ('t_closed',    'closed',    5000,    '{EUR}'),
    -- t/300-pg.t: ids that look hostile but are legal, and the longest ids
    ('t_m.1:2-3--x', 'active',   NULL,    '{EUR}'),
    ('t_long_' || repeat('m', 57), 'suspended', NULL, NULL)
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,
    max_amount = EXCLUDED.max_amount, currencies = EXCLUDED.currencies;

INSERT INTO cards (token, status, country) VALUES
    ('t_card_us',      'active',  'US'),
    ('t_card_nocty',   'active',  NULL),
    ('t_card_blocked', 'blocked', 'US'),
    ('t_card_lost',    'lost',    'US'),
    ('t_card_stolen',  'stolen',  'GB'),
    ('t_card_expired', 'expired', 'US'),
    -- t/300-pg.t: a hostile-looking legal token, and the longest token
    ('t_c:1-1.x--',    'blocked', 'DE'),
    ('t_long_' || repeat('c', 121), 'lost', 'US')
ON CONFLICT (token) DO UPDATE SET status = EXCLUDED.status,
    country = EXCLUDED.country;

INSERT INTO blocked_bins (bin, reason) VALUES
    ('777777',   'six'),
    ('8888888',  'seven'),
    ('99999999', 'eight')
ON CONFLICT (bin) DO NOTHING;
