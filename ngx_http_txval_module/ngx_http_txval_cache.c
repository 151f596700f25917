
/*
 * txval: the shared-memory verdict cache.
 *
 * One zone for all workers: a red-black tree keyed by a hash of the
 * transaction id and its namespace (txval_namespace; both compared in
 * full on a hit), an LRU queue, and an expiry time per entry. Every entry
 * has the same size (room for the longest id and namespace), so all
 * entries live in one slab class and a full zone never fragments: when
 * the slab is full, entries are evicted from the LRU tail until the
 * allocation succeeds.
 *
 * An entry is a verdict, or the mark of a transaction being validated
 * (pending): a lookup that finds nothing leaves a mark with the id, so
 * that the same id arriving meanwhile, on any worker, is told it is in
 * progress. The request that holds the mark replaces it with its verdict,
 * or releases it; a mark whose holder went away without either (a worker
 * killed) expires after NGX_HTTP_TXVAL_PENDING_TTL.
 */


#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_digest.h"


typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of the id */
    ngx_queue_t                 queue;      /* LRU, newest at the head */
    ngx_msec_t                  expires;
    uint64_t                    raw[2];     /* keyed hash of the body */
    uint64_t                    owner;      /* pending: who holds it */
    u_char                      fingerprint[NGX_HTTP_TXVAL_DIGEST_LEN];
    uint16_t                    reasons;
    uint8_t                     risk_score;
    uint8_t                     pending;
    uint8_t                     id_len;
    uint8_t                     ns_len;     /* 0: no namespace */
    u_char                      id[NGX_HTTP_TXVAL_ID_MAX];
    u_char                      ns[NGX_HTTP_TXVAL_NAMESPACE_MAX];
} ngx_http_txval_cache_node_t;


/* the zone's layout: a reload keeps a zone only when it matches */
#define NGX_HTTP_TXVAL_CACHE_LAYOUT                                          \
    (0x74780000 | sizeof(ngx_http_txval_cache_node_t))


typedef struct ngx_http_txval_cache_sh_s {
    uint32_t                    layout;     /* first, in every version */
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_http_txval_cache_stats_t  stats;
    u_char                      key[16];    /* of the body hashes */
} ngx_http_txval_cache_sh_t;


static ngx_int_t ngx_http_txval_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_txval_cache_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static uint32_t ngx_http_txval_cache_hash(ngx_str_t *ns, const u_char *id,
    size_t len);
static ngx_int_t ngx_http_txval_cache_cmp(ngx_str_t *ns, const u_char *id,
    size_t len, ngx_http_txval_cache_node_t *cn);
static ngx_http_txval_cache_node_t *ngx_http_txval_cache_find(
    ngx_http_txval_cache_t *cache, ngx_str_t *ns, const u_char *id,
    size_t len, uint32_t hash);
static void ngx_http_txval_cache_delete(ngx_http_txval_cache_t *cache,
    ngx_http_txval_cache_node_t *cn);
static void ngx_http_txval_cache_expire(ngx_http_txval_cache_t *cache,
    ngx_uint_t n);
static ngx_http_txval_cache_node_t *ngx_http_txval_cache_get(
    ngx_http_txval_cache_t *cache, ngx_str_t *ns, ngx_http_txval_txn_t *txn,
    uint32_t hash);
static ngx_http_txval_cache_node_t *ngx_http_txval_cache_alloc(
    ngx_http_txval_cache_t *cache, ngx_str_t *ns, ngx_http_txval_txn_t *txn,
    uint32_t hash, ngx_log_t *log);
static void ngx_http_txval_cache_copy(ngx_http_txval_cache_node_t *cn,
    ngx_http_txval_record_t *rec);


/* txval_cache_zone NAME:SIZE [ttl=TIME]; */

char *
ngx_http_txval_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    ngx_str_t               *value, s;
    ngx_int_t                ttl;
    ngx_http_txval_cache_t  *cache;

    if (tmcf->cache) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ttl = 10 * 60 * 1000;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "ttl=", 4) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" directive",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + 4;
        s.len = value[2].len - 4;

        ttl = ngx_parse_time(&s, 0);

        if (ttl == NGX_ERROR || ttl < 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive, "
                               "ttl must be a time of at least 1s",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = (ngx_msec_t) ttl;
    cache->shm_zone = ngx_http_txval_zone_add(cf, cmd, &value[1],
                                              ngx_http_txval_cache_init_zone,
                                              cache);
    if (cache->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    tmcf->cache = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_int_t                rc;
    ngx_http_txval_cache_t  *cache;

    cache = shm_zone->data;
    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    rc = ngx_http_txval_zone_init(shm_zone, data,
                                  sizeof(ngx_http_txval_cache_sh_t),
                                  NGX_HTTP_TXVAL_CACHE_LAYOUT,
                                  "txval_cache_zone", (void **) &cache->sh);
    if (rc != NGX_OK) {
        /* NGX_DONE: kept across a reload, entries and all */
        return (rc == NGX_DONE) ? NGX_OK : NGX_ERROR;
    }

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_txval_cache_rbtree_insert);
    ngx_queue_init(&cache->sh->lru);

    /*
     * the key of the body hashes, made with the zone (in the master, when
     * the configuration is read): nobody outside can make two bodies
     * collide
     */
    ngx_http_txval_random(shm_zone->shm.log, cache->sh->key,
                          sizeof(cache->sh->key));

    return NGX_OK;
}


ngx_int_t
ngx_http_txval_cache_lookup(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec, uint64_t owner,
    ngx_log_t *log)
{
    uint32_t                      hash;
    ngx_int_t                     rc;
    ngx_http_txval_cache_node_t  *cn;

    hash = ngx_http_txval_cache_hash(ns, (u_char *) txn->id, txn->id_len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_txval_cache_get(cache, ns, txn, hash);

    if (cn == NULL) {
        cache->sh->stats.misses++;

        /* the mark: in progress, for anyone else (best effort) */

        cn = ngx_http_txval_cache_alloc(cache, ns, txn, hash, log);

        if (cn) {
            cn->pending = 1;
            cn->owner = owner;
            cn->expires = ngx_current_msec + NGX_HTTP_TXVAL_PENDING_TTL;
            rc = NGX_DECLINED;

        } else {
            rc = NGX_ABORT;
        }

    } else if (cn->pending) {
        cache->sh->stats.in_progress++;
        rc = NGX_AGAIN;

    } else if (ngx_memcmp(cn->fingerprint, txn->fingerprint,
                          NGX_HTTP_TXVAL_DIGEST_LEN) != 0)
    {
        cache->sh->stats.conflicts++;
        rc = NGX_BUSY;

    } else {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->lru, &cn->queue);

        ngx_http_txval_cache_copy(cn, rec);

        cache->sh->stats.hits++;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * The same bytes as a body whose verdict is here, under the same id: that
 * verdict, without parsing the body again. Counted as a hit; a miss is
 * not counted (the full lookup follows and counts).
 */

ngx_int_t
ngx_http_txval_cache_replay(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    const u_char *id, size_t len, const uint64_t raw[2],
    ngx_http_txval_record_t *rec)
{
    uint32_t                      hash;
    ngx_int_t                     rc;
    ngx_http_txval_cache_node_t  *cn;

    hash = ngx_http_txval_cache_hash(ns, id, len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_txval_cache_find(cache, ns, id, len, hash);

    if (cn && !cn->pending && cn->raw[0] == raw[0] && cn->raw[1] == raw[1]
        && (ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0)
    {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->lru, &cn->queue);

        ngx_http_txval_cache_copy(cn, rec);

        cache->sh->stats.hits++;
        rc = NGX_OK;

    } else {
        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_txval_cache_raw(ngx_http_txval_cache_t *cache, const u_char *body,
    size_t len, const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, uint64_t raw[2])
{
    /* the key never changes once the zone is made: read without the lock */
    ngx_http_txval_txn_raw(cache->sh->key, body, len, map, values, raw);
}


ngx_int_t
ngx_http_txval_cache_store(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec,
    const uint64_t raw[2], ngx_log_t *log)
{
    uint32_t                      hash;
    ngx_http_txval_cache_node_t  *cn;

    hash = ngx_http_txval_cache_hash(ns, (u_char *) txn->id, txn->id_len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    ngx_http_txval_cache_expire(cache, 2);

    cn = ngx_http_txval_cache_get(cache, ns, txn, hash);

    if (cn && !cn->pending) {
        /*
         * another request stored this id while this one was validated
         * (its mark had expired): the first verdict stays; other content
         * is a conflict
         */

        if (ngx_memcmp(cn->fingerprint, rec->fingerprint,
                       NGX_HTTP_TXVAL_DIGEST_LEN) != 0)
        {
            cache->sh->stats.conflicts++;
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_BUSY;
        }

        ngx_http_txval_cache_copy(cn, rec);
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DONE;
    }

    if (cn == NULL) {
        cn = ngx_http_txval_cache_alloc(cache, ns, txn, hash, log);

        if (cn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_OK;
        }
    }

    /* a new entry, or a mark (this request's, or one held too long) */

    cn->pending = 0;
    cn->owner = 0;
    cn->expires = ngx_current_msec + cache->ttl;
    ngx_memcpy(cn->fingerprint, rec->fingerprint, NGX_HTTP_TXVAL_DIGEST_LEN);
    cn->raw[0] = raw[0];
    cn->raw[1] = raw[1];
    cn->reasons = rec->reasons;
    cn->risk_score = rec->risk_score;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


/* a mark this request left and no verdict replaced */

void
ngx_http_txval_cache_release(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    ngx_http_txval_txn_t *txn, uint64_t owner)
{
    uint32_t                      hash;
    ngx_http_txval_cache_node_t  *cn;

    hash = ngx_http_txval_cache_hash(ns, (u_char *) txn->id, txn->id_len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_txval_cache_find(cache, ns, (u_char *) txn->id,
                                   txn->id_len, hash);

    if (cn && cn->pending && cn->owner == owner) {
        ngx_http_txval_cache_delete(cache, cn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_http_txval_cache_stats(ngx_http_txval_cache_t *cache,
    ngx_http_txval_cache_stats_t *stats, size_t *used, size_t *total)
{
    size_t  pages;

    pages = (cache->shpool->end - cache->shpool->start) >> ngx_pagesize_shift;

    ngx_shmtx_lock(&cache->shpool->mutex);

    *stats = cache->sh->stats;
    *used = (pages - cache->shpool->pfree) << ngx_pagesize_shift;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    *total = cache->shm_zone->shm.size;
}


/*
 * An entry's key is its namespace and its id: the hash covers both, each
 * after its length, and both are compared (an id with ':' in it cannot
 * pass for a namespace)
 */

static uint32_t
ngx_http_txval_cache_hash(ngx_str_t *ns, const u_char *id, size_t len)
{
    u_char    n;
    uint32_t  hash;

    if (ns == NULL) {
        return ngx_crc32_short((u_char *) id, len);
    }

    n = (u_char) ns->len;

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, &n, 1);
    ngx_crc32_update(&hash, ns->data, ns->len);
    ngx_crc32_update(&hash, (u_char *) id, len);
    ngx_crc32_final(hash);

    return hash;
}


static ngx_int_t
ngx_http_txval_cache_cmp(ngx_str_t *ns, const u_char *id, size_t len,
    ngx_http_txval_cache_node_t *cn)
{
    ngx_int_t  rc;

    if (ns == NULL) {
        rc = (cn->ns_len == 0) ? 0 : -1;

    } else {
        rc = ngx_memn2cmp(ns->data, cn->ns, ns->len, cn->ns_len);
    }

    if (rc != 0) {
        return rc;
    }

    return ngx_memn2cmp((u_char *) id, cn->id, len, cn->id_len);
}


static ngx_http_txval_cache_node_t *
ngx_http_txval_cache_find(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    const u_char *id, size_t len, uint32_t hash)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_txval_cache_node_t  *cn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        cn = (ngx_http_txval_cache_node_t *) node;

        rc = ngx_http_txval_cache_cmp(ns, id, len, cn);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_txval_cache_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_str_t                      ns;
    ngx_rbtree_node_t            **p;
    ngx_http_txval_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = (ngx_http_txval_cache_node_t *) node;
            cnt = (ngx_http_txval_cache_node_t *) temp;
            ns.data = cn->ns;
            ns.len = cn->ns_len;

            p = (ngx_http_txval_cache_cmp(cn->ns_len ? &ns : NULL, cn->id,
                                          cn->id_len, cnt) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_txval_cache_delete(ngx_http_txval_cache_t *cache,
    ngx_http_txval_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node);
    ngx_slab_free_locked(cache->shpool, cn);
    cache->sh->stats.entries--;
}


/* drops up to n expired entries from the LRU tail; the lock is held */

static void
ngx_http_txval_cache_expire(ngx_http_txval_cache_t *cache, ngx_uint_t n)
{
    ngx_queue_t                  *q;
    ngx_http_txval_cache_node_t  *cn;

    while (n-- && !ngx_queue_empty(&cache->sh->lru)) {

        q = ngx_queue_last(&cache->sh->lru);
        cn = ngx_queue_data(q, ngx_http_txval_cache_node_t, queue);

        if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            return;
        }

        ngx_http_txval_cache_delete(cache, cn);
        cache->sh->stats.expired++;
    }
}


/* the live entry for this id (an expired one is dropped); locked */

static ngx_http_txval_cache_node_t *
ngx_http_txval_cache_get(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    ngx_http_txval_txn_t *txn, uint32_t hash)
{
    ngx_http_txval_cache_node_t  *cn;

    cn = ngx_http_txval_cache_find(cache, ns, (u_char *) txn->id,
                                   txn->id_len, hash);

    if (cn && (ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0) {
        ngx_http_txval_cache_delete(cache, cn);
        cache->sh->stats.expired++;
        cn = NULL;
    }

    return cn;
}


/*
 * A new entry for this id, in the tree and at the head of the LRU, or
 * NULL when even an empty LRU leaves no room; locked
 */

static ngx_http_txval_cache_node_t *
ngx_http_txval_cache_alloc(ngx_http_txval_cache_t *cache, ngx_str_t *ns,
    ngx_http_txval_txn_t *txn, uint32_t hash, ngx_log_t *log)
{
    ngx_queue_t                  *q;
    ngx_http_txval_cache_node_t  *cn;

    for ( ;; ) {
        cn = ngx_slab_alloc_locked(cache->shpool,
                                   sizeof(ngx_http_txval_cache_node_t));
        if (cn) {
            break;
        }

        if (ngx_queue_empty(&cache->sh->lru)) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "txval: could not allocate an entry in "
                          "txval_cache_zone \"%V\"",
                          &cache->shm_zone->shm.name);
            return NULL;
        }

        q = ngx_queue_last(&cache->sh->lru);
        ngx_http_txval_cache_delete(cache,
                   ngx_queue_data(q, ngx_http_txval_cache_node_t, queue));
        cache->sh->stats.evictions++;
    }

    ngx_memzero(cn, sizeof(ngx_http_txval_cache_node_t));

    cn->node.key = hash;
    cn->id_len = txn->id_len;
    ngx_memcpy(cn->id, txn->id, txn->id_len);

    if (ns) {
        cn->ns_len = (uint8_t) ns->len;
        ngx_memcpy(cn->ns, ns->data, ns->len);
    }

    ngx_rbtree_insert(&cache->sh->rbtree, &cn->node);
    ngx_queue_insert_head(&cache->sh->lru, &cn->queue);
    cache->sh->stats.entries++;

    return cn;
}


static void
ngx_http_txval_cache_copy(ngx_http_txval_cache_node_t *cn,
    ngx_http_txval_record_t *rec)
{
    ngx_memcpy(rec->fingerprint, cn->fingerprint, NGX_HTTP_TXVAL_DIGEST_LEN);
    rec->reasons = cn->reasons;
    rec->risk_score = cn->risk_score;
}
