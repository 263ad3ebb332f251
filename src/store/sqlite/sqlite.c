/* sqlite/sqlite.c — the embedded store: SQLite in WAL mode, synchronous=FULL,
 * one writer thread that group-commits queued jobs (writer.c), one read
 * connection per thread (conn.c). Opens and closes it and assembles its verbs,
 * whose SQL lives in one file per entity group beside this one. */
#include <stdio.h>
#include <stdlib.h>

#include "store/sqlite/sq.h"
#include "util/util.h"

static sq_query q_ping = {.sql = "SELECT 1"};

static td_st v_ping(td_conn *c)
{
    sqlite3_stmt *st = sq_stmt(c, &q_ping);
    td_st r = sq_step_row(st);
    sq_finish(st);
    return r;
}

static void assemble_verbs(td_store_ops *ops)
{
    ops->ping = v_ping;
    sq_members_verbs(ops);
    sq_credentials_verbs(ops);
    sq_requests_verbs(ops);
    sq_tokens_verbs(ops);
    sq_idempotency_verbs(ops);
    sq_cards_verbs(ops);
    sq_dcards_verbs(ops);
    sq_operations_verbs(ops);
    sq_outbox_verbs(ops);
    sq_delivery_verbs(ops);
    sq_timers_verbs(ops);
    sq_meta_verbs(ops);
    sq_sealed_verbs(ops);
}

static void store_close(td_store *pub)
{
    sq_store *s = (sq_store *)pub;
    sq_writer_stop(s);
    sq_conn_close(s->writer);
    for (td_conn *c = s->readers, *next; c; c = next) {
        next = c->next_reader;
        sq_conn_close(c);
    }
    sq_guard_release(s);
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->readers_mu);
    td_jobq_destroy(&s->base);
    free(s);
}

/* The queue's check, then the files: still the ones written, with room left. */
static bool writable(td_store *pub, char *why, size_t cap)
{
    sq_store *s = (sq_store *)pub;
    if (!td_jobq_writable(&s->base, why, cap)) return false;
    if (!sq_guard_intact(s)) {
        snprintf(why, cap, "the store file was deleted or replaced while tokend was serving it");
        return false;
    }
    int64_t free_bytes = sq_guard_free_bytes(s);
    if (pub->min_free_bytes > 0 && free_bytes >= 0 && free_bytes < pub->min_free_bytes) {
        snprintf(why, cap, "the store's file system has %lld MiB free, below the %lld MiB tokend keeps for writes",
                 (long long)(free_bytes >> 20), (long long)(pub->min_free_bytes >> 20));
        return false;
    }
    return true;
}

td_store *td_store_sqlite_open(const char *path, char *err, size_t cap)
{
    /* SQLite's memory statistics take a global mutex on every allocation, which
     * the HTTP threads and the writer contended for (bench/HISTORY.md). It
     * can only be set before SQLite initialises; later calls just fail. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sq_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (td_strlcpy(s->path, path, sizeof s->path)) {
        snprintf(err, cap, "store path too long");
        free(s);
        return NULL;
    }
    s->db_fd = s->wal_fd = -1;
    td_make_parent_dirs(s->path);
    pthread_mutex_init(&s->readers_mu, NULL);
    pthread_key_create(&s->reader_key, NULL);
    td_jobq_setup(&s->base);
    assemble_verbs(&s->ops);
    s->base.pub.ops = &s->ops;
    s->base.pub.reader = sq_reader;
    s->base.pub.close = store_close;
    s->base.pub.writable = writable;
    if (sq_guard_lock(s, err, cap) == 0) s->writer = sq_conn_open(s, err, cap);
    if (!s->writer || sq_migrate(s->writer, err, cap) != 0 || sq_guard_watch(s, err, cap) != 0 ||
        sq_writer_start(s, err, cap) != 0) {
        store_close(&s->base.pub);
        return NULL;
    }
    return &s->base.pub;
}
