
/*
 * txval: the lookup cache's own interface between its files.
 *
 * _lookup.c has the directive and the zone; _lookup_listener.c the LISTEN
 * connection, which reads and writes the listener's part of the zone
 * (its owner, heartbeat, candidate, retiring owner) under the zone's
 * lock, and empties the zone or drops an entry through the two functions
 * below. The worker's listener hangs off the conf (lc->listener).
 */


#ifndef _NGX_HTTP_TXVAL_LOOKUP_INT_H_INCLUDED_
#define _NGX_HTTP_TXVAL_LOOKUP_INT_H_INCLUDED_


#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_pg.h"


#define NGX_HTTP_TXVAL_LOOKUP_NODE     256      /* bytes, one slab class */
#define NGX_HTTP_TXVAL_LOOKUP_RECENT   64       /* invalidations kept */

#define NGX_HTTP_TXVAL_LOOKUP_MERCHANT 1
#define NGX_HTTP_TXVAL_LOOKUP_CARD     2
#define NGX_HTTP_TXVAL_LOOKUP_BIN      3

/* entry flags */
#define NGX_HTTP_TXVAL_LOOKUP_FOUND    0x01
#define NGX_HTTP_TXVAL_LOOKUP_ACTIVE   0x02     /* merchant: active */
#define NGX_HTTP_TXVAL_LOOKUP_BLOCKED  0x02     /* card: blocked */
#define NGX_HTTP_TXVAL_LOOKUP_HAS_MAX  0x04
#define NGX_HTTP_TXVAL_LOOKUP_LIMITED  0x08     /* currencies listed */
#define NGX_HTTP_TXVAL_LOOKUP_COUNTRY  0x10

/* ms: an owner that did not beat for that long is gone */
#define NGX_HTTP_TXVAL_LOOKUP_STALE    1000


typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of kind, key */
    ngx_queue_t                 queue;      /* LRU, newest at the head */
    ngx_msec_t                  expires;
    uint64_t                    gen;
    int64_t                     max;
    uint8_t                     kind;
    uint8_t                     key_len;
    uint8_t                     flags;
    uint8_t                     ncurrencies;

    /* the key, then a merchant's currencies or a card's country */
    u_char                      data[NGX_HTTP_TXVAL_LOOKUP_NODE - 84];
} ngx_http_txval_lookup_node_t;


/* one slab class: the entry is exactly NGX_HTTP_TXVAL_LOOKUP_NODE bytes */
typedef char  ngx_http_txval_lookup_node_size_check[
    (sizeof(ngx_http_txval_lookup_node_t) == NGX_HTTP_TXVAL_LOOKUP_NODE
     && NGX_HTTP_TXVAL_MERCHANT_MAX + 3 * NGX_HTTP_TXVAL_CURRENCIES_MAX
        <= NGX_HTTP_TXVAL_LOOKUP_NODE - 84
     && NGX_HTTP_TXVAL_TOKEN_MAX + 2 <= NGX_HTTP_TXVAL_LOOKUP_NODE - 84)
    ? 1 : -1];


/* the zone's layout: a reload keeps a zone only when it matches */
#define NGX_HTTP_TXVAL_LOOKUP_LAYOUT                                         \
    ((uint32_t) (0x74790000 + (sizeof(ngx_http_txval_lookup_node_t) << 12)  \
                 + sizeof(ngx_http_txval_lookup_sh_t)))


struct ngx_http_txval_lookup_sh_s {
    uint32_t                    layout;     /* first, in every version */
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_http_txval_lookup_stats_t  stats;

    uint64_t                    gen;        /* flush generation */
    uint64_t                    seq;        /* invalidations */
    uint32_t                    recent[NGX_HTTP_TXVAL_LOOKUP_RECENT];

    /* the listener */
    ngx_uint_t                  usable;     /* its owner listens */
    ngx_msec_t                  heartbeat;  /* its owner's last beat */
    ngx_pid_t                   owner;
    ngx_uint_t                  owner_cgen;
    uint32_t                    owner_channel;  /* crc32 of its channel */
    ngx_pid_t                   candidate;  /* connecting to take over */
    ngx_msec_t                  candidate_at;
    ngx_pid_t                   retiring;   /* the old owner, to confirm */
    ngx_msec_t                  retiring_at;

    /* the configuration generation: one more per configuration read */
    ngx_uint_t                  cgen;
    ngx_uint_t                  cgen_notify;    /* that one has notify= */
};


typedef enum {
    NGX_HTTP_TXVAL_LISTENER_IDLE = 0,
    NGX_HTTP_TXVAL_LISTENER_CONNECTING,
    NGX_HTTP_TXVAL_LISTENER_LISTENING,      /* LISTEN sent */
    NGX_HTTP_TXVAL_LISTENER_UP
} ngx_http_txval_listener_state_e;


/* this worker's side of the listener (lc->listener, from init_process) */
struct ngx_http_txval_listener_s {
    ngx_http_txval_lookup_t    *lc;         /* NULL once the worker exits */
    ngx_http_txval_pg_conf_t   *pcf;
    ngx_log_t                  *log;
    PGconn                     *pg;
    ngx_connection_t           *c;
    ngx_http_txval_listener_state_e  state;
    ngx_event_t                 tick;       /* every worker */
    ngx_event_t                 timer;      /* connect, LISTEN, ping */
    ngx_event_t                 hold;       /* an exiting owner's wait */
    ngx_msec_t                  retry_at;
    ngx_msec_t                  backoff;
    ngx_msec_t                  ping_at;
    ngx_msec_t                  hold_until;
    ngx_uint_t                  cgen;
    uint32_t                    channel;    /* crc32 of the channel */
    char                       *listen_sql;
    unsigned                    busy:1;     /* a command's answer is due */
    unsigned                    owner:1;    /* what the zone said, last */
    unsigned                    retiring:1; /* handed over: a last ping */
    unsigned                    final:1;    /* ... sent after that */
    unsigned                    holding:1;
};


/* every entry goes: a new generation; the zone's lock held */
void ngx_http_txval_lookup_flush_locked(ngx_http_txval_lookup_t *lc);

/*
 * A notification: the key's entry goes, and the stores of rows read
 * before it too; at_us, the trigger's clock (0: none), for the lag.
 * Takes the zone's lock.
 */
void ngx_http_txval_lookup_invalidate(ngx_http_txval_lookup_t *lc,
    ngx_uint_t kind, const u_char *key, size_t len, int64_t at_us);


#endif /* _NGX_HTTP_TXVAL_LOOKUP_INT_H_INCLUDED_ */
