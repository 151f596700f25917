
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
static void ngx_http_txval_help(ngx_http_txval_text_t *t, const char *name,
    const char *type, const char *help);
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

static const char  *ngx_http_txval_verdict_names[] = {
    "approved", "declined", "error"
};

static const char  *ngx_http_txval_layer_names[] = { "shm", "redis" };

static const char  *ngx_http_txval_lookup_names[] = {
    "hit", "miss", "conflict", "error", "in_progress"
};

static const char  *ngx_http_txval_backend_names[] = { "redis", "postgres" };

static const char  *ngx_http_txval_result_names[] = {
    "ok", "error", "timeout"
};

static const char  *ngx_http_txval_lookup_result_names[] = {
    "hit", "miss", "invalidated", "flushed"
};

static const char  *ngx_http_txval_state_names[] = {
    "busy", "idle", "connecting"
};

static const char  *ngx_http_txval_error_names[NGX_HTTP_TXVAL_ERRORS] = {
    "method_not_allowed", "unsupported_media_type", "invalid_json",
    "invalid_field", "pan_not_accepted", "idempotency_conflict",
    "idempotency_in_progress", "backend_unavailable"
};


const char *
ngx_http_txval_error_name(unsigned error)
{
    if (error == 0 || error > NGX_HTTP_TXVAL_ERRORS) {
        return "";
    }

    return ngx_http_txval_error_names[error - 1];
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
    unsigned               i, j;
    ngx_http_txval_text_t  t;

    t.pos = buf;
    t.end = buf + size;
    t.overflow = 0;

    ngx_http_txval_help(&t, "txval_requests_total", "counter",
                        "Validated requests by verdict.");

    for (i = 0; i < NGX_HTTP_TXVAL_VERDICTS; i++) {
        ngx_http_txval_text(&t, "txval_requests_total{verdict=\"%s\"} %llu\n",
                            ngx_http_txval_verdict_names[i],
                            (unsigned long long) s->requests[i]);
    }

    ngx_http_txval_help(&t, "txval_reasons_total", "counter",
                        "Decline reasons given.");

    for (i = 0; i < NGX_HTTP_TXVAL_NREASONS; i++) {
        ngx_http_txval_text(&t, "txval_reasons_total{reason=\"%s\"} %llu\n",
                            ngx_http_txval_reason_name(i),
                            (unsigned long long) s->reasons[i]);
    }

    ngx_http_txval_help(&t, "txval_cache_lookups_total", "counter",
                        "Verdict cache lookups by layer and result.");

    for (i = 0; i < NGX_HTTP_TXVAL_LAYERS; i++) {
        for (j = 0; j < NGX_HTTP_TXVAL_LOOKUPS; j++) {
            ngx_http_txval_text(&t, "txval_cache_lookups_total"
                                "{layer=\"%s\",result=\"%s\"} %llu\n",
                                ngx_http_txval_layer_names[i],
                                ngx_http_txval_lookup_names[j],
                                (unsigned long long) s->lookups[i][j]);
        }
    }

    ngx_http_txval_help(&t, "txval_backend_requests_total", "counter",
                        "Round trips to Redis and Postgres by result.");

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        for (j = 0; j < NGX_HTTP_TXVAL_RESULTS; j++) {
            ngx_http_txval_text(&t, "txval_backend_requests_total"
                                "{backend=\"%s\",result=\"%s\"} %llu\n",
                                ngx_http_txval_backend_names[i],
                                ngx_http_txval_result_names[j],
                                (unsigned long long) s->backend[i][j]);
        }
    }

    ngx_http_txval_help(&t, "txval_degraded_total", "counter",
                        "Requests validated without a backend's rules under "
                        "txval_fail_mode open, by the backend that failed.");

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        ngx_http_txval_text(&t, "txval_degraded_total{backend=\"%s\"} %llu\n",
                            ngx_http_txval_backend_names[i],
                            (unsigned long long) s->degraded[i]);
    }

    ngx_http_txval_help(&t, "txval_errors_total", "counter",
                        "Error responses by error code.");

    for (i = 0; i < NGX_HTTP_TXVAL_ERRORS; i++) {
        ngx_http_txval_text(&t, "txval_errors_total{error=\"%s\"} %llu\n",
                            ngx_http_txval_error_names[i],
                            (unsigned long long) s->errors[i]);
    }

    ngx_http_txval_help(&t, "txval_dry_run_total", "counter",
                        "Requests validated in dry run, by the outcome "
                        "they would have had.");

    for (i = 0; i < NGX_HTTP_TXVAL_VERDICTS; i++) {
        ngx_http_txval_text(&t, "txval_dry_run_total{verdict=\"%s\"} %llu\n",
                            ngx_http_txval_verdict_names[i],
                            (unsigned long long) s->dry_run[i]);
    }

    ngx_http_txval_help(&t, "txval_request_duration_seconds", "histogram",
                        "Time spent validating a request.");
    ngx_http_txval_histogram(&t, "txval_request_duration_seconds", NULL,
                             &s->duration);

    ngx_http_txval_help(&t, "txval_backend_duration_seconds", "histogram",
                        "Round trip of a Redis command batch or a Postgres "
                        "query, by backend.");

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        ngx_http_txval_histogram(&t, "txval_backend_duration_seconds",
                                 ngx_http_txval_backend_names[i],
                                 &s->backend_duration[i]);
    }

    ngx_http_txval_help(&t, "txval_cache_entries", "gauge",
                        "Verdicts in the shared-memory cache.");
    ngx_http_txval_text(&t, "txval_cache_entries %llu\n",
                        (unsigned long long) s->cache_entries);

    ngx_http_txval_help(&t, "txval_cache_bytes_used", "gauge",
                        "Bytes of the cache zone in use.");
    ngx_http_txval_text(&t, "txval_cache_bytes_used %llu\n",
                        (unsigned long long) s->cache_bytes_used);

    ngx_http_txval_help(&t, "txval_cache_bytes_total", "gauge",
                        "Size of the cache zone in bytes.");
    ngx_http_txval_text(&t, "txval_cache_bytes_total %llu\n",
                        (unsigned long long) s->cache_bytes_total);

    ngx_http_txval_help(&t, "txval_cache_evictions_total", "counter",
                        "Live entries evicted to make room.");
    ngx_http_txval_text(&t, "txval_cache_evictions_total %llu\n",
                        (unsigned long long) s->cache_evictions);

    ngx_http_txval_help(&t, "txval_pool_connections", "gauge",
                        "Backend connections of all workers by state.");

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        for (j = 0; j < NGX_HTTP_TXVAL_POOL_STATES; j++) {
            ngx_http_txval_text(&t, "txval_pool_connections"
                                "{backend=\"%s\",state=\"%s\"} %llu\n",
                                ngx_http_txval_backend_names[i],
                                ngx_http_txval_state_names[j],
                                (unsigned long long) s->pools[i][j]);
        }
    }

    ngx_http_txval_help(&t, "txval_lookup_cache_total", "counter",
                        "Lookup cache: transactions answered from it (hit) "
                        "or asking Postgres (miss), entries dropped by a "
                        "notification (invalidated), times emptied "
                        "(flushed).");

    for (i = 0; i < NGX_HTTP_TXVAL_LOOKUP_RESULTS; i++) {
        ngx_http_txval_text(&t, "txval_lookup_cache_total{result=\"%s\"} "
                            "%llu\n", ngx_http_txval_lookup_result_names[i],
                            (unsigned long long) s->lookup_results[i]);
    }

    if (s->lookup_notify) {
        /* only where there is a listener: an alert on 0 means it */
        ngx_http_txval_help(&t, "txval_lookup_listener_up", "gauge",
                            "1 while the lookup cache's LISTEN connection "
                            "is up and the cache is used.");
        ngx_http_txval_text(&t, "txval_lookup_listener_up %llu\n",
                            (unsigned long long) s->lookup_listener_up);
    }

    ngx_http_txval_help(&t, "txval_lookup_cache_entries", "gauge",
                        "Rows and absences in the lookup cache.");
    ngx_http_txval_text(&t, "txval_lookup_cache_entries %llu\n",
                        (unsigned long long) s->lookup_entries);

    ngx_http_txval_help(&t, "txval_lookup_cache_bytes_used", "gauge",
                        "Bytes of the lookup cache zone in use.");
    ngx_http_txval_text(&t, "txval_lookup_cache_bytes_used %llu\n",
                        (unsigned long long) s->lookup_bytes_used);

    ngx_http_txval_help(&t, "txval_lookup_cache_size_bytes", "gauge",
                        "Size of the lookup cache zone in bytes.");
    ngx_http_txval_text(&t, "txval_lookup_cache_size_bytes %llu\n",
                        (unsigned long long) s->lookup_bytes_total);

    ngx_http_txval_help(&t, "txval_lookup_cache_evictions_total", "counter",
                        "Live lookup cache entries evicted to make room.");
    ngx_http_txval_text(&t, "txval_lookup_cache_evictions_total %llu\n",
                        (unsigned long long) s->lookup_evictions);

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
