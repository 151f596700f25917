
/*
 * txval: the Prometheus text exposition (SPEC "Metrics").
 *
 * Pure C: see ngx_http_txval_prometheus.h.
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ngx_http_txval_prometheus.h"


typedef struct {
    unsigned char           *pos;
    unsigned char           *end;
    int                      overflow;
} ngx_http_txval_text_t;


static void ngx_http_txval_text(ngx_http_txval_text_t *t, const char *fmt,
    ...) __attribute__((format(printf, 2, 3)));
/* a label and its values, in the order of a snapshot's array */
typedef struct {
    const char              *label;
    const char *const       *names;
    unsigned                 n;
} ngx_http_txval_dim_t;


static void ngx_http_txval_help(ngx_http_txval_text_t *t, const char *name,
    const char *type, const char *help);
static void ngx_http_txval_family(ngx_http_txval_text_t *t, const char *name,
    const char *type, const char *help, const ngx_http_txval_dim_t *d1,
    const ngx_http_txval_dim_t *d2, const uint64_t *values);
static void ngx_http_txval_histogram(ngx_http_txval_text_t *t,
    const char *name, const char *label,
    const ngx_http_txval_histogram_t *h);


const uint64_t  ngx_http_txval_bucket_ns[NGX_HTTP_TXVAL_BUCKETS] = {
    100000, 250000, 500000,
    1000000, 2500000, 5000000,
    10000000, 25000000, 50000000,
    100000000, 250000000, 500000000,
    1000000000
};

static const char  *ngx_http_txval_bucket_le[NGX_HTTP_TXVAL_BUCKETS] = {
    "0.0001", "0.00025", "0.0005",
    "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5",
    "1"
};

/* each label's values, in the order of the snapshot's arrays */

static const ngx_http_txval_dim_t  ngx_http_txval_by_verdict = {
    "verdict", (const char *[NGX_HTTP_TXVAL_VERDICTS]) {
        "approved", "declined", "error" },
    NGX_HTTP_TXVAL_VERDICTS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_layer = {
    "layer", (const char *[NGX_HTTP_TXVAL_LAYERS]) { "shm", "redis" },
    NGX_HTTP_TXVAL_LAYERS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_lookup = {
    "result", (const char *[NGX_HTTP_TXVAL_LOOKUPS]) {
        "hit", "miss", "conflict", "error", "in_progress" },
    NGX_HTTP_TXVAL_LOOKUPS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_backend = {
    "backend", (const char *[NGX_HTTP_TXVAL_BACKENDS]) { "redis", "postgres" },
    NGX_HTTP_TXVAL_BACKENDS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_result = {
    "result", (const char *[NGX_HTTP_TXVAL_RESULTS]) {
        "ok", "error", "timeout" },
    NGX_HTTP_TXVAL_RESULTS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_lookup_result = {
    "result", (const char *[NGX_HTTP_TXVAL_LOOKUP_RESULTS]) {
        "hit", "miss", "invalidated", "flushed" },
    NGX_HTTP_TXVAL_LOOKUP_RESULTS
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_state = {
    "state", (const char *[NGX_HTTP_TXVAL_POOL_STATES]) {
        "busy", "idle", "connecting" },
    NGX_HTTP_TXVAL_POOL_STATES
};

static const ngx_http_txval_dim_t  ngx_http_txval_by_error = {
    "error", (const char *[NGX_HTTP_TXVAL_ERRORS]) {
        "method_not_allowed", "unsupported_media_type", "invalid_json",
        "invalid_field", "pan_not_accepted", "idempotency_conflict",
        "idempotency_in_progress", "backend_unavailable" },
    NGX_HTTP_TXVAL_ERRORS
};


const char *
ngx_http_txval_error_name(unsigned error)
{
    if (error == 0 || error > NGX_HTTP_TXVAL_ERRORS) {
        return "";
    }

    return ngx_http_txval_by_error.names[error - 1];
}


unsigned
ngx_http_txval_bucket(uint64_t ns)
{
    unsigned  i;

    for (i = 0; i < NGX_HTTP_TXVAL_BUCKETS; i++) {
        if (ns <= ngx_http_txval_bucket_ns[i]) {
            return i;
        }
    }

    return NGX_HTTP_TXVAL_BUCKETS;
}


size_t
ngx_http_txval_prometheus(unsigned char *buf, size_t size,
    const ngx_http_txval_snapshot_t *s)
{
    unsigned               i;
    const char            *reasons[NGX_HTTP_TXVAL_NREASONS];
    ngx_http_txval_text_t  t;
    ngx_http_txval_dim_t   by_reason;

    t.pos = buf;
    t.end = buf + size;
    t.overflow = 0;

    for (i = 0; i < NGX_HTTP_TXVAL_NREASONS; i++) {
        reasons[i] = ngx_http_txval_reason_name(i);
    }

    by_reason.label = "reason";
    by_reason.names = reasons;
    by_reason.n = NGX_HTTP_TXVAL_NREASONS;

    ngx_http_txval_family(&t, "txval_requests_total", "counter",
                          "Validated requests by verdict.",
                          &ngx_http_txval_by_verdict, NULL, s->requests);

    ngx_http_txval_family(&t, "txval_reasons_total", "counter",
                          "Decline reasons given.",
                          &by_reason, NULL, s->reasons);

    ngx_http_txval_family(&t, "txval_cache_lookups_total", "counter",
                          "Verdict cache lookups by layer and result.",
                          &ngx_http_txval_by_layer, &ngx_http_txval_by_lookup,
                          &s->lookups[0][0]);

    ngx_http_txval_family(&t, "txval_backend_requests_total", "counter",
                          "Round trips to Redis and Postgres by result.",
                          &ngx_http_txval_by_backend,
                          &ngx_http_txval_by_result, &s->backend[0][0]);

    ngx_http_txval_family(&t, "txval_degraded_total", "counter",
                          "Requests validated without a backend's rules "
                          "under txval_fail_mode open, by the backend that "
                          "failed.",
                          &ngx_http_txval_by_backend, NULL, s->degraded);

    ngx_http_txval_family(&t, "txval_errors_total", "counter",
                          "Error responses by error code.",
                          &ngx_http_txval_by_error, NULL, s->errors);

    ngx_http_txval_family(&t, "txval_dry_run_total", "counter",
                          "Requests validated in dry run, by the outcome "
                          "they would have had.",
                          &ngx_http_txval_by_verdict, NULL, s->dry_run);

    ngx_http_txval_help(&t, "txval_request_duration_seconds", "histogram",
                        "Time spent validating a request.");
    ngx_http_txval_histogram(&t, "txval_request_duration_seconds", NULL,
                             &s->duration);

    ngx_http_txval_help(&t, "txval_backend_duration_seconds", "histogram",
                        "Round trip of a Redis command batch or a Postgres "
                        "query, by backend.");

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        ngx_http_txval_histogram(&t, "txval_backend_duration_seconds",
                                 ngx_http_txval_by_backend.names[i],
                                 &s->backend_duration[i]);
    }

    ngx_http_txval_family(&t, "txval_cache_entries", "gauge",
                          "Verdicts in the shared-memory cache.",
                          NULL, NULL, &s->cache_entries);
    ngx_http_txval_family(&t, "txval_cache_bytes_used", "gauge",
                          "Bytes of the cache zone in use.",
                          NULL, NULL, &s->cache_bytes_used);
    ngx_http_txval_family(&t, "txval_cache_bytes_total", "gauge",
                          "Size of the cache zone in bytes.",
                          NULL, NULL, &s->cache_bytes_total);
    ngx_http_txval_family(&t, "txval_cache_evictions_total", "counter",
                          "Live entries evicted to make room.",
                          NULL, NULL, &s->cache_evictions);

    ngx_http_txval_family(&t, "txval_pool_connections", "gauge",
                          "Backend connections of all workers by state.",
                          &ngx_http_txval_by_backend,
                          &ngx_http_txval_by_state, &s->pools[0][0]);

    ngx_http_txval_family(&t, "txval_lookup_cache_total", "counter",
                          "Lookup cache: transactions answered from it (hit) "
                          "or asking Postgres (miss), entries dropped by a "
                          "notification (invalidated), times emptied "
                          "(flushed).",
                          &ngx_http_txval_by_lookup_result, NULL,
                          s->lookup_results);

    if (s->lookup_notify) {
        /* only where there is a listener: an alert on 0 means it */
        ngx_http_txval_family(&t, "txval_lookup_listener_up", "gauge",
                              "1 while the lookup cache's LISTEN connection "
                              "is up and the cache is used.",
                              NULL, NULL, &s->lookup_listener_up);
    }

    ngx_http_txval_family(&t, "txval_lookup_cache_entries", "gauge",
                          "Rows and absences in the lookup cache.",
                          NULL, NULL, &s->lookup_entries);
    ngx_http_txval_family(&t, "txval_lookup_cache_bytes_used", "gauge",
                          "Bytes of the lookup cache zone in use.",
                          NULL, NULL, &s->lookup_bytes_used);
    ngx_http_txval_family(&t, "txval_lookup_cache_size_bytes", "gauge",
                          "Size of the lookup cache zone in bytes.",
                          NULL, NULL, &s->lookup_bytes_total);
    ngx_http_txval_family(&t, "txval_lookup_cache_evictions_total", "counter",
                          "Live lookup cache entries evicted to make room.",
                          NULL, NULL, &s->lookup_evictions);

    ngx_http_txval_help(&t, "txval_lookup_notify_lag_seconds", "histogram",
                        "From the time a notification carries (the "
                        "trigger's clock at commit) to the entry's drop.");
    ngx_http_txval_histogram(&t, "txval_lookup_notify_lag_seconds", NULL,
                             &s->lookup_lag);

    ngx_http_txval_help(&t, "txval_build_info", "gauge",
                        "The txval and nginx versions, as a label.");
    ngx_http_txval_text(&t, "txval_build_info{version=\"%s\",nginx=\"%s\"} 1\n",
                        s->version ? s->version : "",
                        s->nginx ? s->nginx : "");

    return t.overflow ? 0 : (size_t) (t.pos - buf);
}


/*
 * A family: its HELP and TYPE, then one series without labels (d1 NULL),
 * one per value of d1, or one per pair of d1's and d2's (values[i][j]).
 */

static void
ngx_http_txval_family(ngx_http_txval_text_t *t, const char *name,
    const char *type, const char *help, const ngx_http_txval_dim_t *d1,
    const ngx_http_txval_dim_t *d2, const uint64_t *values)
{
    unsigned  i, j;

    ngx_http_txval_help(t, name, type, help);

    if (d1 == NULL) {
        ngx_http_txval_text(t, "%s %llu\n", name,
                            (unsigned long long) values[0]);
        return;
    }

    for (i = 0; i < d1->n; i++) {

        if (d2 == NULL) {
            ngx_http_txval_text(t, "%s{%s=\"%s\"} %llu\n", name, d1->label,
                                d1->names[i], (unsigned long long) values[i]);
            continue;
        }

        for (j = 0; j < d2->n; j++) {
            ngx_http_txval_text(t, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name,
                                d1->label, d1->names[i], d2->label,
                                d2->names[j],
                                (unsigned long long) values[i * d2->n + j]);
        }
    }
}


/* the _bucket, _sum and _count series of a histogram, with a backend */

static void
ngx_http_txval_histogram(ngx_http_txval_text_t *t, const char *name,
    const char *backend, const ngx_http_txval_histogram_t *h)
{
    unsigned  i;
    uint64_t  cumulative;
    char      label[64];

    if (backend) {
        snprintf(label, sizeof(label), "backend=\"%s\",", backend);

    } else {
        label[0] = '\0';
    }

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_TXVAL_BUCKETS; i++) {
        cumulative += h->buckets[i];
        ngx_http_txval_text(t, "%s_bucket{%sle=\"%s\"} %llu\n", name, label,
                            ngx_http_txval_bucket_le[i],
                            (unsigned long long) cumulative);
    }

    cumulative += h->buckets[NGX_HTTP_TXVAL_BUCKETS];

    ngx_http_txval_text(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label,
                        (unsigned long long) cumulative);

    /* the label without its comma, in braces, or nothing */

    if (backend) {
        snprintf(label, sizeof(label), "{backend=\"%s\"}", backend);
    }

    ngx_http_txval_text(t, "%s_sum%s %llu.%09llu\n", name, label,
                        (unsigned long long) (h->sum_ns / 1000000000),
                        (unsigned long long) (h->sum_ns % 1000000000));
    ngx_http_txval_text(t, "%s_count%s %llu\n", name, label,
                        (unsigned long long) cumulative);
}


static void
ngx_http_txval_help(ngx_http_txval_text_t *t, const char *name,
    const char *type, const char *help)
{
    ngx_http_txval_text(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}


static void
ngx_http_txval_text(ngx_http_txval_text_t *t, const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (t->overflow) {
        return;
    }

    va_start(args, fmt);
    n = vsnprintf((char *) t->pos, t->end - t->pos, fmt, args);
    va_end(args);

    if (n < 0 || n >= t->end - t->pos) {
        t->overflow = 1;
        return;
    }

    t->pos += n;
}
