-- txval schema (SPEC "Data"): merchants, cards, blocked BINs.
-- Usable with `psql -f` and from the Postgres image's
-- /docker-entrypoint-initdb.d/.

CREATE TABLE IF NOT EXISTS merchants (
    id          text PRIMARY KEY,
    status      text NOT NULL,
    max_amount  bigint,
    currencies  text[]
);

CREATE TABLE IF NOT EXISTS cards (
    token       text PRIMARY KEY,
    status      text NOT NULL,
    country     text
);

CREATE TABLE IF NOT EXISTS blocked_bins (
    bin         text PRIMARY KEY,
    reason      text
);
