/* pg/pg.c — the PostgreSQL store, for one or many tokend nodes: opens it from
 * a libpq URL (several hosts with target_session_attrs=read-write after a
 * failover), applies migrations, starts the writers, assembles the verbs
 * (one file per entity group beside this one) and closes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/util.h"

/* Writer connections per node (TD_PG_WRITERS overrides). Fewer writers find
 * more jobs queued each, so a commit carries more requests: on the benchmark
 * machine 2 writers beat 1 (28 requests a commit, but one connection's round
 * trips in a row) and 4 or 8 (2-3 a commit: CPU spent on commits); a
 * database further away (longer round trips) wants more (docs/scaling.md). */
#define DEFAULT_WRITERS 2

static pg_query q_ping = {.sql = "SELECT 1"};

static td_st v_ping(td_conn *c)
{
    PGresult *r;
    td_st st = pg_row(c, &q_ping, NULL, &r);
    PQclear(r);
    return st;
}

static void assemble_verbs(td_store_ops *ops)
{
    ops->ping = v_ping;
    pg_members_verbs(ops);
    pg_credentials_verbs(ops);
    pg_requests_verbs(ops);
    pg_tokens_verbs(ops);
    pg_idempotency_verbs(ops);
    pg_cards_verbs(ops);
    pg_dcards_verbs(ops);
    pg_operations_verbs(ops);
    pg_outbox_verbs(ops);
    pg_delivery_verbs(ops);
    pg_timers_verbs(ops);
    pg_meta_verbs(ops);
    pg_sealed_verbs(ops);
}

static int writers_wanted(void)
{
    const char *env = getenv("TD_PG_WRITERS"); /* for benchmarks (docs/scaling.md) */
    int64_t n = DEFAULT_WRITERS;
    if (env && td_parse_i64(env, &n) != 0) n = DEFAULT_WRITERS;
    return n < 1 ? 1 : n > PG_WRITERS_MAX ? PG_WRITERS_MAX : (int)n;
}

static void store_close(td_store *pub)
{
    pg_store *s = (pg_store *)pub;
    pg_writer_stop(s);
    for (int i = 0; i < s->n_writers; i++)
        pg_conn_close(s->writers[i]);
    for (td_conn *c = s->readers, *next; c; c = next) {
        next = c->next;
        pg_conn_close(c);
    }
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->conns_mu);
    td_jobq_destroy(&s->base);
    free(s);
}

td_store *td_store_pg_open(const char *url, char *err, size_t cap)
{
    pg_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (td_strlcpy(s->conninfo, url, sizeof s->conninfo)) {
        snprintf(err, cap, "store URL too long");
        free(s);
        return NULL;
    }
    td_store_redact_url(url, s->safe_url, sizeof s->safe_url);
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_key_create(&s->reader_key, NULL);
    td_jobq_setup(&s->base);
    assemble_verbs(&s->ops);
    s->base.pub.ops = &s->ops;
    s->base.pub.reader = pg_reader;
    s->base.pub.close = store_close;
    s->n_writers = writers_wanted();
    s->writers[0] = pg_conn_open(s, err, cap);
    if (!s->writers[0] || pg_migrate(s->writers[0], err, cap) != 0 || pg_writer_start(s, err, cap) != 0) {
        store_close(&s->base.pub);
        return NULL;
    }
    return &s->base.pub;
}
