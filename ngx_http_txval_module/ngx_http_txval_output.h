
/*
 * txval: what the module writes for clients: verdict and error bodies.
 *
 * Pure C, no nginx types: every writer fills a caller's buffer and returns
 * the length written (0 if it did not fit).
 */


#ifndef _NGX_HTTP_TXVAL_OUTPUT_H_INCLUDED_
#define _NGX_HTTP_TXVAL_OUTPUT_H_INCLUDED_


#include "ngx_http_txval_rules.h"


/*
 * enough for the longest verdict or error body (a detail that names a
 * source of up to 256 bytes, escaped)
 */
#define NGX_HTTP_TXVAL_BODY_MAX  1024


/* what a body adds at its end: "degraded":true, "dry_run":true */
#define NGX_HTTP_TXVAL_OUT_DEGRADED  1
#define NGX_HTTP_TXVAL_OUT_DRY_RUN   2


size_t ngx_http_txval_verdict_json(unsigned char *buf, size_t size,
    const char *id, size_t id_len, const ngx_http_txval_result_t *result,
    const char *source, unsigned flags);

/*
 * {"error":"<error>"[,"field":"<field>"][,"id":"<id>"],"detail":"<detail>"
 * [,"dry_run":true]}
 * field, id may be NULL; the detail is escaped (it may name a source as
 * configured), the others may not need JSON escaping.
 */
size_t ngx_http_txval_error_json(unsigned char *buf, size_t size,
    const char *error, const char *field, const char *id,
    const char *detail, unsigned flags);

/* the reasons' names joined by sep, e.g. "card_blocked,risk_too_high" */
size_t ngx_http_txval_reasons_list(unsigned char *buf, size_t size,
    uint32_t reasons, char sep, int quoted);


#endif /* _NGX_HTTP_TXVAL_OUTPUT_H_INCLUDED_ */
