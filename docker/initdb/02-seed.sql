-- Demo rows for `make run`, the README's examples and the benchmarks.

INSERT INTO merchants (id, status, max_amount, currencies) VALUES
    ('m_acme',     'active',    500000, '{USD,EUR}'),
    ('m_globex',   'active',    NULL,   NULL),
    ('m_initech',  'suspended', 100000, '{USD}'),
    ('m_small',    'active',    10000,  '{}')
ON CONFLICT (id) DO NOTHING;

INSERT INTO cards (token, status, country) VALUES
    ('tok_4242',   'active',  'US'),
    ('tok_fr',     'active',  'FR'),
    ('tok_lost',   'lost',    'US'),
    ('tok_stolen', 'stolen',  'GB'),
    ('tok_block',  'blocked', NULL)
ON CONFLICT (token) DO NOTHING;

INSERT INTO blocked_bins (bin, reason) VALUES
    ('666666',   'test range'),
    ('4000123',  'issuer fraud report'),
    ('51000001', 'compromised batch')
ON CONFLICT (bin) DO NOTHING;

-- many merchants and cards, for benchmarks with unique lookups
INSERT INTO merchants (id, status, max_amount, currencies)
    SELECT 'm_bench_' || g, 'active', 1000000, '{USD}'
    FROM generate_series(1, 1000) AS g
ON CONFLICT (id) DO NOTHING;

INSERT INTO cards (token, status, country)
    SELECT 'tok_bench_' || g, 'active', 'US'
    FROM generate_series(1, 10000) AS g
ON CONFLICT (token) DO NOTHING;
