/* store_sqlite.c — the embedded store: SQLite in WAL mode, synchronous=FULL,
 * one writer thread that group-commits queued jobs, one read connection per
 * thread. Every SQL statement of the project lives in this file. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/decision.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

extern const char *const td_migrations[];
extern const int td_migration_count;

/* ---- statements, prepared once per connection ---- */

enum {
    Q_PING,
    Q_MEMBER_INSERT,
    Q_MEMBER_GET,
    Q_KEY_INSERT,
    Q_KEY_GET,
    Q_KEY_FOR_LEVEL,
    Q_KEY_LIST,
    Q_KEY_DELETE,
    Q_CRED_INSERT,
    Q_CRED_GET,
    Q_ISSUER_INSERT,
    Q_ISSUER_GET,
    Q_REQ_INSERT,
    Q_REQ_GET,
    Q_REQ_BY_CONSENT,
    Q_REQ_UPDATE,
    Q_TOKEN_INSERT,
    Q_TOKEN_GET,
    Q_TOKEN_UPDATE,
    Q_EVENT_APPEND,
    Q_EVENT_COUNT,
    Q_IDEM_GET,
    Q_IDEM_PUT,
    Q_POLICY_GET,
    Q_POLICY_PUT,
    Q_CARD_INSERT,
    Q_CARD_GET,
    Q_CARD_BY_FP,
    Q_CARD_UPDATE,
    Q_DCARD_INSERT,
    Q_DCARD_GET,
    Q_DCARD_BY_CORRELATION,
    Q_DCARD_UPDATE,
    Q_DCARD_LIST_BY_CARD,
    Q_DCARD_LIST_BY_ISSUER,
    Q_DCARD_COUNTS,
    Q_DCARD_EVENT_APPEND,
    Q_DCARD_EVENT_ANSWER,
    Q_OP_INSERT,
    Q_OP_GET,
    Q_OP_UPDATE,
    Q_OUTBOX_INSERT,
    Q_OUTBOX_CANCEL,
    Q_OUTBOX_OTP_TIMES,
    Q_OUTBOX_LIST,
    Q_OUTBOX_CLAIM,
    Q_DELIVERY_ISSUERS,
    Q_OUTBOX_NEXT_DUE,
    Q_OUTBOX_ATTEMPT,
    Q_OUTBOX_REPLAY_ONE,
    Q_OUTBOX_REPLAY_ALL,
    Q_OUTBOX_STATS,
    Q_DELIVERY_PUT,
    Q_DELIVERY_GET,
    Q_TIMER_INSERT,
    Q_TIMER_DUE,
    Q_TIMER_GET,
    Q_TIMER_EXISTS,
    Q_TIMER_FINISH,
    Q_TIMER_CANCEL_DCARD,
    Q_TIMER_RESCHEDULE,
    Q_TIMER_NEXT_DUE,
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_SYNC_FULL,
    Q_SYNC_NORMAL,
    Q__COUNT
};

#define TOKEN_COLS                                                                                                     \
    "id, kind, state, from_id, to_id, issuer_id, ref_id, acting_as_ref_id, token_request_id, "                         \
    "replaced_by, canceled_by, created_ms, expires_ms, seq, json, payload_canonical, accounts_src, "                   \
    "accounts_dst"
#define REQ_COLS                                                                                                       \
    "id, kind, from_id, to_id, state, created_ms, expires_ms, request_json, token_id, "                                \
    "signature_json, consent_hash, consent_expires_ms, consent_used"
#define KEY_COLS "member_id, key_id, level, algorithm, public_key, sealed_secret, created_ms, expires_ms"
#define CARD_COLS                                                                                                      \
    "issuer_id, card_id, consumer_id, pan_fp, pan_sealed, last4, expiry, phone, email, state, seq, created_ms, "       \
    "updated_ms"
#define DCARD_COLS                                                                                                     \
    "id, issuer_id, card_id, state, suspended_by, last_event_ms, seq, stepup_open, idv_failures, "                     \
    "revivable_until_ms, verdict, decision_reason, wallet_provider_id, token_requestor_id, token_storage_id, "         \
    "is_primary, correlation_id, digitize_op_id, last4, device_json, idv_json, answer_json, stepup_deadline_ms, "      \
    "created_ms, updated_ms"
#define OP_COLS                                                                                                        \
    "id, issuer_id, digital_card_id, card_id, operation, status, requestor_type, reason, reason_code, error_code, "    \
    "correlation_id, start_ms, end_ms"
/* Without id (assigned on insert): the insert's columns; reads add id in front. */
#define OUTBOX_COLS                                                                                                    \
    "issuer_id, channel, digital_card_id, card_id, dcard_seq, operation_id, operation, status, error_code, source, "   \
    "correlation_id, wallet_provider_id, message, method_id, secret_sealed, event_ms, created_ms, due_ms, state, "     \
    "order_key, attempts, last_status, last_error, first_attempt_ms, lease_until_ms, done_ms, replayed_ms, "           \
    "token_storage_id, is_primary, last4, dcard_state"
#define OPEN_STATES "('PENDING', 'IN_FLIGHT')"
#define DELIVERY_COLS                                                                                                  \
    "issuer_id, profile, base_url, auth, secret_sealed, oauth_token_url, oauth_client_id, oauth_scope, "               \
    "tls_cert_file, tls_key_file, tls_ca_file, tls_pinned_key, d1_batch_max, max_age_ms, timeout_ms, messaging_url, "  \
    "templates_json, updated_ms"
#define TIMER_COLS "issuer_id, digital_card_id, kind, n, due_ms, state"

static const char *const SQL[Q__COUNT] = {
    [Q_PING] = "SELECT 1",
    [Q_MEMBER_INSERT] = "INSERT INTO members(id, display_name, created_ms) VALUES (?1, ?2, ?3)",
    [Q_MEMBER_GET] = "SELECT id, display_name, created_ms FROM members WHERE id = ?1",
    [Q_KEY_INSERT] = "INSERT INTO member_keys(" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_KEY_GET] = "SELECT " KEY_COLS " FROM member_keys WHERE member_id = ?1 AND key_id = ?2",
    [Q_KEY_FOR_LEVEL] = "SELECT " KEY_COLS " FROM member_keys WHERE member_id = ?1 AND level = ?2 "
                        "AND sealed_secret IS NOT NULL ORDER BY created_ms DESC LIMIT 1",
    [Q_KEY_LIST] = "SELECT " KEY_COLS " FROM member_keys WHERE member_id = ?1 ORDER BY created_ms, key_id",
    [Q_KEY_DELETE] = "DELETE FROM member_keys WHERE member_id = ?1 AND key_id = ?2",
    [Q_CRED_INSERT] = "INSERT INTO credentials(hash, kind, owner_id, level, role, created_ms) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_CRED_GET] = "SELECT hash, kind, owner_id, level, role, created_ms FROM credentials WHERE hash = ?1",
    [Q_ISSUER_INSERT] = "INSERT INTO issuers(id, display_name, created_ms) VALUES (?1, ?2, ?3)",
    [Q_ISSUER_GET] = "SELECT id, display_name, created_ms FROM issuers WHERE id = ?1",
    [Q_REQ_INSERT] = "INSERT INTO token_requests(" REQ_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                     "?9, ?10, ?11, ?12, ?13)",
    [Q_REQ_GET] = "SELECT " REQ_COLS " FROM token_requests WHERE id = ?1",
    [Q_REQ_BY_CONSENT] = "SELECT " REQ_COLS " FROM token_requests WHERE consent_hash = ?1 AND consent_hash <> ''",
    [Q_REQ_UPDATE] = "UPDATE token_requests SET state = ?2, token_id = ?3, signature_json = ?4, "
                     "consent_hash = ?5, consent_expires_ms = ?6, consent_used = ?7 WHERE id = ?1",
    [Q_TOKEN_INSERT] = "INSERT INTO tokens(" TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                       "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    [Q_TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1",
    [Q_TOKEN_UPDATE] = "UPDATE tokens SET state = ?2, replaced_by = ?3, canceled_by = ?4, seq = ?5, "
                       "json = ?6 WHERE id = ?1 AND seq = ?7",
    [Q_EVENT_APPEND] = "INSERT INTO token_events(token_id, seq, time_ms, type, actor, customer_ip, "
                       "customer_initiated, customer_device_id, detail_json) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_EVENT_COUNT] = "SELECT count(*) FROM token_events WHERE token_id = ?1",
    [Q_IDEM_GET] = "SELECT req_hash, status, body FROM idempotency WHERE scope = ?1 AND key = ?2",
    [Q_IDEM_PUT] = "INSERT INTO idempotency(scope, key, req_hash, status, body, created_ms) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_POLICY_GET] = "SELECT card_policy_json FROM issuers WHERE id = ?1",
    [Q_POLICY_PUT] = "UPDATE issuers SET card_policy_json = ?2 WHERE id = ?1",
    [Q_CARD_INSERT] =
        "INSERT INTO cards(" CARD_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [Q_CARD_GET] = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = ?1 AND card_id = ?2",
    [Q_CARD_BY_FP] = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = ?1 AND pan_fp = ?2",
    [Q_CARD_UPDATE] = "UPDATE cards SET state = ?3, seq = ?4, updated_ms = ?5 "
                      "WHERE issuer_id = ?1 AND card_id = ?2 AND seq = ?6",
    [Q_DCARD_INSERT] = "INSERT INTO digital_cards(" DCARD_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                       "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    [Q_DCARD_GET] = "SELECT " DCARD_COLS " FROM digital_cards WHERE id = ?1",
    [Q_DCARD_BY_CORRELATION] = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = ?1 AND correlation_id = ?2",
    [Q_DCARD_UPDATE] = "UPDATE digital_cards SET state = ?2, suspended_by = ?3, last_event_ms = ?4, seq = ?5, "
                       "stepup_open = ?6, idv_failures = ?7, revivable_until_ms = ?8, stepup_deadline_ms = ?9, "
                       "updated_ms = ?10 WHERE id = ?1 AND seq = ?11",
    /* Oldest first; rowid (insertion order) breaks ties and is in every index, so no sort. */
    [Q_DCARD_LIST_BY_CARD] = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = ?1 AND card_id = ?2 "
                             "ORDER BY created_ms, rowid",
    [Q_DCARD_LIST_BY_ISSUER] = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = ?1 AND created_ms >= ?2 "
                               "AND created_ms < ?3 ORDER BY created_ms, rowid LIMIT ?4 OFFSET ?5",
    /* Per state: the engine (td_decision_counts_token) says which states count. */
    [Q_DCARD_COUNTS] = "SELECT state, count(*), sum(created_ms >= ?3) FROM digital_cards "
                       "WHERE issuer_id = ?1 AND card_id = ?2 GROUP BY state",
    [Q_DCARD_EVENT_APPEND] = "INSERT INTO dcard_events(digital_card_id, seq, issuer_id, event_id, source, type, "
                             "outcome, why, event_ms, time_ms, detail_json, answer_json) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    /* event_id <> '' lets the partial unique index dcard_events_dedupe serve it. */
    [Q_DCARD_EVENT_ANSWER] = "SELECT answer_json FROM dcard_events WHERE issuer_id = ?1 AND source = ?2 "
                             "AND event_id = ?3 AND event_id <> ''",
    [Q_OP_INSERT] = "INSERT INTO operations(" OP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                    "?12, ?13)",
    [Q_OP_GET] = "SELECT " OP_COLS " FROM operations WHERE issuer_id = ?1 AND id = ?2",
    [Q_OP_UPDATE] = "UPDATE operations SET status = ?3, error_code = ?4, end_ms = ?5 WHERE issuer_id = ?1 AND id = ?2",
    [Q_OUTBOX_INSERT] =
        "INSERT INTO outbox(" OUTBOX_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
        "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
    /* ?2 is a comma-separated list of message names: an exact match of one of
     * them (instr on ",A,B," for ",A,"), not a pattern; spaces are ignored. */
    [Q_OUTBOX_CANCEL] = "UPDATE outbox SET state = 'CANCELLED' WHERE digital_card_id = ?1 AND channel = 'USER' "
                        "AND state = 'PENDING' AND message <> '' "
                        "AND instr(',' || replace(?2, ' ', '') || ',', ',' || message || ',') > 0",
    [Q_OUTBOX_OTP_TIMES] = "SELECT created_ms FROM outbox WHERE digital_card_id = ?1 AND channel = 'USER' "
                           "AND message = 'OTP' AND created_ms >= ?2 ORDER BY id LIMIT ?3",
    [Q_OUTBOX_LIST] = "SELECT id, " OUTBOX_COLS " FROM outbox WHERE issuer_id = ?1 AND id > ?2 "
                      "AND (?3 IS NULL OR state = ?3) ORDER BY id LIMIT ?4",
    /* One statement per configured issuer (v_outbox_claim): pick, mark
     * IN_FLIGHT, return the rows as marked. It reads the issuer's heads
     * (migration 005: the first open row of each order key, kept by triggers)
     * that are due, oldest due first, through a partial index holding the
     * filter columns: rows waiting behind a head, heads whose retry is not
     * due, and other issuers' heads (an issuer without delivery settings may
     * have a backlog) are never read, and the scan stops at the limit. */
    [Q_OUTBOX_CLAIM] = "UPDATE outbox SET state = 'IN_FLIGHT', lease_until_ms = ?3, "
                       "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN ?1 ELSE first_attempt_ms END "
                       "WHERE id IN (SELECT o.id FROM outbox AS o INDEXED BY outbox_heads_due "
                       "WHERE o.issuer_id = ?4 AND o.head = 1 AND o.due_ms <= ?1 "
                       "AND (o.state = 'PENDING' OR (o.state = 'IN_FLIGHT' AND o.lease_until_ms < ?1)) "
                       "ORDER BY o.due_ms, o.id LIMIT ?2) RETURNING id, " OUTBOX_COLS,
    [Q_DELIVERY_ISSUERS] = "SELECT issuer_id FROM issuer_delivery ORDER BY issuer_id",
    /* One seek per configured issuer in outbox_heads_due. */
    [Q_OUTBOX_NEXT_DUE] = "SELECT min((SELECT o.due_ms FROM outbox AS o INDEXED BY outbox_heads_due "
                          "WHERE o.issuer_id = d.issuer_id AND o.head = 1 AND o.due_ms > ?1 "
                          "ORDER BY o.due_ms LIMIT 1)) FROM issuer_delivery AS d",
    /* ?2 PENDING: due again at ?6; DELIVERED or DEAD: done at ?5, and no
     * longer a head (set here rather than by outbox_head_close: one rewrite). */
    [Q_OUTBOX_ATTEMPT] = "UPDATE outbox SET state = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4, "
                         "due_ms = CASE WHEN ?2 = 'PENDING' THEN ?6 ELSE due_ms END, "
                         "head = CASE WHEN ?2 = 'PENDING' THEN head ELSE 0 END, "
                         "done_ms = CASE WHEN ?2 = 'PENDING' THEN 0 ELSE ?5 END, lease_until_ms = 0 WHERE id = ?1",
    [Q_OUTBOX_REPLAY_ONE] = "UPDATE outbox SET state = 'PENDING', due_ms = ?3, lease_until_ms = 0, done_ms = 0, "
                            "replayed_ms = ?3 WHERE id = ?2 AND issuer_id = ?1 AND state = 'DEAD'",
    [Q_OUTBOX_REPLAY_ALL] = "UPDATE outbox SET state = 'PENDING', due_ms = ?2, lease_until_ms = 0, done_ms = 0, "
                            "replayed_ms = ?2 WHERE issuer_id = ?1 AND state = 'DEAD'",
    /* Counts read the partial indexes of migration 006 alone (the IN term
     * repeats outbox_open's condition so that the index serves the count).
     * The oldest open row is the first open row of its key (rows are created
     * in id order), a head: the minimum over the heads is the minimum over
     * all open rows. */
    [Q_OUTBOX_STATS] = "SELECT (SELECT count(*) FROM outbox INDEXED BY outbox_open "
                       "WHERE state IN " OPEN_STATES " AND state = 'PENDING'), "
                       "(SELECT count(*) FROM outbox INDEXED BY outbox_open "
                       "WHERE state IN " OPEN_STATES " AND state = 'IN_FLIGHT'), "
                       "(SELECT count(*) FROM outbox INDEXED BY outbox_dead WHERE state = 'DEAD'), "
                       "(SELECT min(created_ms) FROM outbox INDEXED BY outbox_heads_age WHERE head = 1)",
    /* NOT_FOUND (no row written) when the issuer does not exist. */
    [Q_DELIVERY_PUT] = "INSERT OR REPLACE INTO issuer_delivery(" DELIVERY_COLS ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                       "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18 "
                       "WHERE EXISTS (SELECT 1 FROM issuers WHERE id = ?1)",
    [Q_DELIVERY_GET] = "SELECT " DELIVERY_COLS " FROM issuer_delivery WHERE issuer_id = ?1",
    [Q_TIMER_INSERT] = "INSERT INTO timers(" TIMER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_TIMER_DUE] = "SELECT id, " TIMER_COLS " FROM timers WHERE state = 'PENDING' AND due_ms <= ?1 "
                    "ORDER BY due_ms, id LIMIT ?2",
    [Q_TIMER_GET] = "SELECT id, " TIMER_COLS " FROM timers WHERE id = ?1",
    [Q_TIMER_EXISTS] = "SELECT 1 FROM timers WHERE id = ?1",
    [Q_TIMER_FINISH] = "UPDATE timers SET state = ?2 WHERE id = ?1 AND state = 'PENDING'",
    [Q_TIMER_CANCEL_DCARD] = "UPDATE timers SET state = 'CANCELLED' WHERE digital_card_id = ?1 AND state = 'PENDING'",
    [Q_TIMER_RESCHEDULE] = "UPDATE timers SET due_ms = ?2 WHERE id = ?1 AND state = 'PENDING'",
    [Q_TIMER_NEXT_DUE] = "SELECT due_ms FROM timers WHERE state = 'PENDING' ORDER BY due_ms LIMIT 1",
    /* The writer's own statements, prepared once: they run for every job. */
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT job",
    [Q_RELEASE] = "RELEASE job",
    [Q_ROLLBACK_TO] = "ROLLBACK TO job",
    /* Per transaction, before BEGIN: FULL (the default) fsyncs the WAL at
     * COMMIT; NORMAL leaves it to the next FULL commit or checkpoint. The WAL
     * is written in order, so a durable commit makes every earlier one durable
     * too: a power failure can only take a suffix of NORMAL commits. */
    [Q_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [Q_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
};

struct td_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[Q__COUNT];
    struct sqlite_store *owner;
    struct td_conn *next_reader;
};

typedef struct sqlite_store {
    td_store pub;
    char path[1024];
    td_conn *writer;
    pthread_t writer_thread;
    pthread_t reaper_thread;
    bool reaper_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    td_job *head, *tail;
    int queued;          /* jobs in the queue */
    int last_batch;      /* jobs in the previous commit */
    bool outbox_touched; /* this transaction inserted or reopened outbox rows (writer thread only) */
    bool sync_normal;    /* the writer connection is at synchronous=NORMAL (writer thread only) */
    unsigned claim_turn; /* which configured issuer the next claim serves first (writer thread only) */
    bool closing;
    bool thread_started;
    td_conn *readers; /* every reader ever opened, closed at the end */
    pthread_key_t reader_key;
    td_store_stats stats;
    volatile int fault;
} sqlite_store;

/* ---- connections ---- */

static td_st map_rc(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return TD_ST_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return TD_ST_BUSY;
    case SQLITE_CONSTRAINT: return TD_ST_CONFLICT;
    default: return TD_ST_ERROR;
    }
}

static sqlite3_stmt *prepared(td_conn *c, int q)
{
    if (!c->stmt[q]) {
        if (sqlite3_prepare_v3(c->db, SQL[q], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[q], NULL) != SQLITE_OK) {
            td_log(TD_LOG_ERROR, "store_prepare", "%s", sqlite3_errmsg(c->db));
            return NULL;
        }
    }
    return c->stmt[q];
}

/* The statements of the verbs; an injected fault makes them all fail. */
static sqlite3_stmt *stmt(td_conn *c, int q)
{
    return c->owner->fault == 1 ? NULL : prepared(c, q);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        td_log(TD_LOG_ERROR, "store_exec", "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

static td_conn *conn_open(sqlite_store *s, char *err, size_t cap)
{
    td_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->owner = s;
    int rc = sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (err) snprintf(err, cap, "cannot open %s: %s", s->path, sqlite3_errstr(rc));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    /* FULL: a commit is on disk before the writer reports it, so a 2xx means
     * durable. temp_store MEMORY: the statement journal each job's savepoint
     * keeps is scratch no crash recovery needs; as a temp file it took more
     * than half of the writer's writes (docs/performance.md). */
    if (exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                    "PRAGMA temp_store=MEMORY;") != SQLITE_OK) {
        if (err) snprintf(err, cap, "cannot configure %s: %s", s->path, sqlite3_errmsg(c->db));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    return c;
}

static void conn_close(td_conn *c)
{
    if (!c) return;
    for (int i = 0; i < Q__COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

static td_conn *reader(td_store *pub)
{
    sqlite_store *s = (sqlite_store *)pub;
    td_conn *c = pthread_getspecific(s->reader_key);
    if (c) return c;
    c = conn_open(s, NULL, 0);
    if (!c) return NULL;
    pthread_setspecific(s->reader_key, c);
    pthread_mutex_lock(&s->mu);
    c->next_reader = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* ---- migrations ---- */

static int migrate(td_conn *c, char *err, size_t cap)
{
    if (exec(c->db, "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
                    "applied_ms INTEGER NOT NULL)") != SQLITE_OK)
        goto fail;
    for (int i = 0; i < td_migration_count; i++) {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st, NULL);
        sqlite3_bind_int(st, 1, i + 1);
        int have = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        if (have) continue;
        if (exec(c->db, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
        if (exec(c->db, td_migrations[i]) != SQLITE_OK) {
            exec(c->db, "ROLLBACK");
            goto fail;
        }
        sqlite3_prepare_v2(c->db, "INSERT INTO schema_migrations VALUES (?1, ?2)", -1, &st, NULL);
        sqlite3_bind_int(st, 1, i + 1);
        sqlite3_bind_int64(st, 2, td_now_ms());
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE || exec(c->db, "COMMIT") != SQLITE_OK) {
            exec(c->db, "ROLLBACK");
            goto fail;
        }
        td_log(TD_LOG_INFO, "store_migrated", "applied migration %d", i + 1);
    }
    return 0;
fail:
    snprintf(err, cap, "migration failed: %s", sqlite3_errmsg(c->db));
    return -1;
}

/* ---- helpers for binding and reading columns ---- */

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    td_strlcpy(dst, v ? (const char *)v : "", cap);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return v ? strdup((const char *)v) : NULL;
}

/* Runs a statement that returns no row. */
static td_st step_done(sqlite3_stmt *st)
{
    if (!st) return TD_ST_ERROR;
    int rc = sqlite3_step(st);
    td_st r = rc == SQLITE_DONE ? TD_ST_OK : map_rc(rc);
    if (rc == SQLITE_ROW) r = TD_ST_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* Steps to the first row; TD_ST_NOT_FOUND if none. The caller resets. */
static td_st step_row(sqlite3_stmt *st)
{
    if (!st) return TD_ST_ERROR;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return TD_ST_OK;
    if (rc == SQLITE_DONE) return TD_ST_NOT_FOUND;
    return map_rc(rc);
}

static void finish(sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* ---- verbs ---- */

static td_st v_ping(td_conn *c)
{
    sqlite3_stmt *st = stmt(c, Q_PING);
    td_st r = step_row(st);
    finish(st);
    return r;
}

static td_st v_member_insert(td_conn *c, const td_member_rec *m)
{
    sqlite3_stmt *st = stmt(c, Q_MEMBER_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, m->id);
    bind_text(st, 2, m->display_name);
    sqlite3_bind_int64(st, 3, m->created_ms);
    return step_done(st);
}

static td_st v_member_get(td_conn *c, const char *id, td_member_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_MEMBER_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        col_copy(st, 0, out->id, sizeof out->id);
        col_copy(st, 1, out->display_name, sizeof out->display_name);
        out->created_ms = sqlite3_column_int64(st, 2);
    }
    finish(st);
    return r;
}

static td_st v_key_insert(td_conn *c, const td_key_rec *k)
{
    sqlite3_stmt *st = stmt(c, Q_KEY_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, k->member_id);
    bind_text(st, 2, k->key_id);
    sqlite3_bind_int(st, 3, (int)k->level);
    bind_text(st, 4, k->algorithm);
    sqlite3_bind_blob(st, 5, k->public_key, sizeof k->public_key, SQLITE_STATIC);
    if (k->sealed_len)
        sqlite3_bind_blob(st, 6, k->sealed_secret, (int)k->sealed_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, k->created_ms);
    sqlite3_bind_int64(st, 8, k->expires_ms);
    return step_done(st);
}

static void read_key(sqlite3_stmt *st, td_key_rec *k)
{
    memset(k, 0, sizeof *k);
    col_copy(st, 0, k->member_id, sizeof k->member_id);
    col_copy(st, 1, k->key_id, sizeof k->key_id);
    k->level = (td_level)sqlite3_column_int(st, 2);
    col_copy(st, 3, k->algorithm, sizeof k->algorithm);
    int n = sqlite3_column_bytes(st, 4);
    if (n == (int)sizeof k->public_key) memcpy(k->public_key, sqlite3_column_blob(st, 4), (size_t)n);
    n = sqlite3_column_bytes(st, 5);
    if (n > 0 && n <= (int)sizeof k->sealed_secret) {
        memcpy(k->sealed_secret, sqlite3_column_blob(st, 5), (size_t)n);
        k->sealed_len = (size_t)n;
    }
    k->created_ms = sqlite3_column_int64(st, 6);
    k->expires_ms = sqlite3_column_int64(st, 7);
}

static td_st v_key_get(td_conn *c, const char *member_id, const char *key_id, td_key_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_KEY_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, member_id);
    bind_text(st, 2, key_id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_key(st, out);
    finish(st);
    return r;
}

static td_st v_key_for_level(td_conn *c, const char *member_id, td_level level, td_key_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_KEY_FOR_LEVEL);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, member_id);
    sqlite3_bind_int(st, 2, (int)level);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_key(st, out);
    finish(st);
    return r;
}

static td_st v_key_list(td_conn *c, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg)
{
    sqlite3_stmt *st = stmt(c, Q_KEY_LIST);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, member_id);
    int rc;
    td_key_rec k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_key(st, &k);
        fn(&k, arg);
    }
    finish(st);
    return rc == SQLITE_DONE ? TD_ST_OK : map_rc(rc);
}

static td_st v_key_delete(td_conn *c, const char *member_id, const char *key_id)
{
    sqlite3_stmt *st = stmt(c, Q_KEY_DELETE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, member_id);
    bind_text(st, 2, key_id);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static td_st v_cred_insert(td_conn *c, const td_cred_rec *k)
{
    sqlite3_stmt *st = stmt(c, Q_CRED_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, k->hash);
    sqlite3_bind_int(st, 2, (int)k->kind);
    bind_text(st, 3, k->owner_id);
    sqlite3_bind_int(st, 4, (int)k->level);
    bind_text(st, 5, k->role);
    sqlite3_bind_int64(st, 6, k->created_ms);
    return step_done(st);
}

static td_st v_cred_get(td_conn *c, const char *hash, td_cred_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_CRED_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, hash);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        col_copy(st, 0, out->hash, sizeof out->hash);
        out->kind = (td_cred_kind)sqlite3_column_int(st, 1);
        col_copy(st, 2, out->owner_id, sizeof out->owner_id);
        out->level = (td_level)sqlite3_column_int(st, 3);
        col_copy(st, 4, out->role, sizeof out->role);
        out->created_ms = sqlite3_column_int64(st, 5);
    }
    finish(st);
    return r;
}

static td_st v_issuer_insert(td_conn *c, const td_issuer_rec *i)
{
    sqlite3_stmt *st = stmt(c, Q_ISSUER_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, i->id);
    bind_text(st, 2, i->display_name);
    sqlite3_bind_int64(st, 3, i->created_ms);
    return step_done(st);
}

static td_st v_issuer_get(td_conn *c, const char *id, td_issuer_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_ISSUER_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        col_copy(st, 0, out->id, sizeof out->id);
        col_copy(st, 1, out->display_name, sizeof out->display_name);
        out->created_ms = sqlite3_column_int64(st, 2);
    }
    finish(st);
    return r;
}

static td_st v_request_insert(td_conn *c, const td_request_rec *r)
{
    sqlite3_stmt *st = stmt(c, Q_REQ_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->kind);
    bind_text(st, 3, r->from_id);
    bind_text(st, 4, r->to_id);
    sqlite3_bind_int(st, 5, (int)r->state);
    sqlite3_bind_int64(st, 6, r->created_ms);
    sqlite3_bind_int64(st, 7, r->expires_ms);
    bind_text(st, 8, r->request_json);
    bind_text(st, 9, r->token_id);
    bind_text(st, 10, r->signature_json);
    bind_text(st, 11, r->consent_hash);
    sqlite3_bind_int64(st, 12, r->consent_expires_ms);
    sqlite3_bind_int(st, 13, r->consent_used);
    return step_done(st);
}

static void read_request(sqlite3_stmt *st, td_request_rec *r)
{
    memset(r, 0, sizeof *r);
    col_copy(st, 0, r->id, sizeof r->id);
    r->kind = (td_kind)sqlite3_column_int(st, 1);
    col_copy(st, 2, r->from_id, sizeof r->from_id);
    col_copy(st, 3, r->to_id, sizeof r->to_id);
    r->state = (td_request_state)sqlite3_column_int(st, 4);
    r->created_ms = sqlite3_column_int64(st, 5);
    r->expires_ms = sqlite3_column_int64(st, 6);
    r->request_json = col_dup(st, 7);
    col_copy(st, 8, r->token_id, sizeof r->token_id);
    r->signature_json = col_dup(st, 9);
    col_copy(st, 10, r->consent_hash, sizeof r->consent_hash);
    r->consent_expires_ms = sqlite3_column_int64(st, 11);
    r->consent_used = sqlite3_column_int(st, 12) != 0;
}

static td_st request_get_by(td_conn *c, int q, const char *key, td_request_rec *out)
{
    sqlite3_stmt *st = stmt(c, q);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, key);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_request(st, out);
    finish(st);
    return r;
}

static td_st v_request_get(td_conn *c, const char *id, td_request_rec *out)
{
    return request_get_by(c, Q_REQ_GET, id, out);
}

static td_st v_request_by_consent(td_conn *c, const char *hash, td_request_rec *out)
{
    return request_get_by(c, Q_REQ_BY_CONSENT, hash, out);
}

static td_st v_request_update(td_conn *c, const td_request_rec *r)
{
    sqlite3_stmt *st = stmt(c, Q_REQ_UPDATE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->state);
    bind_text(st, 3, r->token_id);
    bind_text(st, 4, r->signature_json);
    bind_text(st, 5, r->consent_hash);
    sqlite3_bind_int64(st, 6, r->consent_expires_ms);
    sqlite3_bind_int(st, 7, r->consent_used);
    td_st res = step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_NOT_FOUND;
    return res;
}

static td_st v_token_insert(td_conn *c, const td_token_rec *t)
{
    sqlite3_stmt *st = stmt(c, Q_TOKEN_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->kind);
    sqlite3_bind_int(st, 3, (int)t->state);
    bind_text(st, 4, t->from_id);
    bind_text(st, 5, t->to_id);
    bind_text(st, 6, t->issuer_id);
    bind_text(st, 7, t->ref_id);
    bind_text(st, 8, t->acting_as_ref_id);
    bind_text(st, 9, t->token_request_id);
    bind_text(st, 10, t->replaced_by);
    bind_text(st, 11, t->canceled_by);
    sqlite3_bind_int64(st, 12, t->created_ms);
    sqlite3_bind_int64(st, 13, t->expires_ms);
    sqlite3_bind_int64(st, 14, t->seq);
    bind_text(st, 15, t->json);
    bind_text(st, 16, t->payload_canonical);
    bind_text(st, 17, t->accounts_src);
    bind_text(st, 18, t->accounts_dst);
    return step_done(st);
}

static void read_token(sqlite3_stmt *st, td_token_rec *t)
{
    memset(t, 0, sizeof *t);
    col_copy(st, 0, t->id, sizeof t->id);
    t->kind = (td_kind)sqlite3_column_int(st, 1);
    t->state = (td_token_state)sqlite3_column_int(st, 2);
    col_copy(st, 3, t->from_id, sizeof t->from_id);
    col_copy(st, 4, t->to_id, sizeof t->to_id);
    col_copy(st, 5, t->issuer_id, sizeof t->issuer_id);
    col_copy(st, 6, t->ref_id, sizeof t->ref_id);
    col_copy(st, 7, t->acting_as_ref_id, sizeof t->acting_as_ref_id);
    col_copy(st, 8, t->token_request_id, sizeof t->token_request_id);
    col_copy(st, 9, t->replaced_by, sizeof t->replaced_by);
    col_copy(st, 10, t->canceled_by, sizeof t->canceled_by);
    t->created_ms = sqlite3_column_int64(st, 11);
    t->expires_ms = sqlite3_column_int64(st, 12);
    t->seq = sqlite3_column_int64(st, 13);
    t->json = col_dup(st, 14);
    t->payload_canonical = col_dup(st, 15);
    t->accounts_src = col_dup(st, 16);
    t->accounts_dst = col_dup(st, 17);
}

static td_st v_token_get(td_conn *c, const char *id, td_token_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_TOKEN_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_token(st, out);
    finish(st);
    return r;
}

static td_st v_token_update(td_conn *c, const td_token_rec *t, int64_t expect_seq)
{
    sqlite3_stmt *st = stmt(c, Q_TOKEN_UPDATE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->state);
    bind_text(st, 3, t->replaced_by);
    bind_text(st, 4, t->canceled_by);
    sqlite3_bind_int64(st, 5, t->seq);
    bind_text(st, 6, t->json);
    sqlite3_bind_int64(st, 7, expect_seq);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_CONFLICT;
    return r;
}

/* The list query is built from the filter: only fixed SQL fragments are
 * concatenated; every value is bound. */
static td_st v_token_list(td_conn *c, const td_token_filter *f, void (*fn)(const td_token_rec *, void *), void *arg)
{
    if (c->owner->fault == 1) return TD_ST_ERROR;
    char sql[1024] = "SELECT " TOKEN_COLS " FROM tokens WHERE ";
    size_t n = strlen(sql);
#define ADD(s)                                                                                                         \
    do {                                                                                                               \
        size_t l_ = strlen(s);                                                                                         \
        if (n + l_ >= sizeof sql) return TD_ST_ERROR;                                                                  \
        memcpy(sql + n, s, l_ + 1);                                                                                    \
        n += l_;                                                                                                       \
    } while (0)
    switch (f->role) {
    case 1: ADD("from_id = ?1"); break;
    case 2: ADD("to_id = ?1"); break;
    case 3: ADD("issuer_id = ?1"); break;
    default: ADD("(from_id = ?1 OR to_id = ?1 OR issuer_id = ?1)"); break;
    }
    if (f->kind >= 0) ADD(" AND kind = ?2");
    /* instr, not LIKE: an exact, case-sensitive account id, where % and _ are not wildcards. */
    if (f->source_account) ADD(" AND instr(' ' || accounts_src || ' ', ' ' || ?3 || ' ') > 0");
    if (f->destination_account) ADD(" AND instr(' ' || accounts_dst || ' ', ' ' || ?4 || ' ') > 0");
    if (f->start_ms) ADD(" AND created_ms >= ?5");
    if (f->end_ms) ADD(" AND created_ms < ?6");
    if (f->acting_as_ref_id) ADD(" AND acting_as_ref_id = ?7");
    ADD(" ORDER BY created_ms DESC, id LIMIT ?8 OFFSET ?9");
#undef ADD
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return TD_ST_ERROR;
    bind_text(st, 1, f->member_id);
    if (f->kind >= 0) sqlite3_bind_int(st, 2, f->kind);
    bind_text(st, 3, f->source_account);
    bind_text(st, 4, f->destination_account);
    sqlite3_bind_int64(st, 5, f->start_ms);
    sqlite3_bind_int64(st, 6, f->end_ms);
    bind_text(st, 7, f->acting_as_ref_id);
    sqlite3_bind_int(st, 8, f->limit);
    sqlite3_bind_int64(st, 9, f->offset);
    int rc;
    td_token_rec t;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_token(st, &t);
        fn(&t, arg);
        td_token_rec_free(&t);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? TD_ST_OK : map_rc(rc);
}

static td_st v_event_append(td_conn *c, const td_event_rec *e)
{
    sqlite3_stmt *st = stmt(c, Q_EVENT_APPEND);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, e->token_id);
    sqlite3_bind_int64(st, 2, e->seq);
    sqlite3_bind_int64(st, 3, e->time_ms);
    bind_text(st, 4, e->type);
    bind_text(st, 5, e->actor);
    bind_text(st, 6, e->customer_ip[0] ? e->customer_ip : NULL);
    bind_text(st, 7, e->customer_initiated[0] ? e->customer_initiated : NULL);
    bind_text(st, 8, e->customer_device_id[0] ? e->customer_device_id : NULL);
    bind_text(st, 9, e->detail_json);
    return step_done(st);
}

static td_st v_event_count(td_conn *c, const char *token_id, int64_t *out)
{
    sqlite3_stmt *st = stmt(c, Q_EVENT_COUNT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, token_id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) *out = sqlite3_column_int64(st, 0);
    finish(st);
    return r;
}

static td_st v_idem_get(td_conn *c, const char *scope, const char *key, td_idem_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_IDEM_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, scope);
    bind_text(st, 2, key);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        col_copy(st, 0, out->req_hash, sizeof out->req_hash);
        out->status = sqlite3_column_int(st, 1);
        out->body = col_dup(st, 2);
    }
    finish(st);
    return r;
}

static td_st v_idem_put(td_conn *c, const char *scope, const char *key, const td_idem_rec *r)
{
    sqlite3_stmt *st = stmt(c, Q_IDEM_PUT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, scope);
    bind_text(st, 2, key);
    bind_text(st, 3, r->req_hash);
    sqlite3_bind_int(st, 4, r->status);
    bind_text(st, 5, r->body ? r->body : "");
    sqlite3_bind_int64(st, 6, td_now_ms());
    return step_done(st);
}

/* ---- network tokenization (migration 003) ---- */

/* The list verbs below read every row first, finish their statement, and only
 * then call fn: fn may call any verb on the same connection (even the same
 * list, or a write to the rows being listed, inside a job) without disturbing
 * a cached statement that is still stepping. */
typedef struct {
    char *items;
    size_t n, cap, size;
} row_buf;

/* A zeroed slot at the end of the buffer, or NULL when out of memory. */
static void *row_add(row_buf *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        char *p = realloc(b->items, cap * b->size);
        if (!p) return NULL;
        b->items = p;
        b->cap = cap;
    }
    void *slot = b->items + b->n++ * b->size;
    memset(slot, 0, b->size);
    return slot;
}

static void *row_at(const row_buf *b, size_t i)
{
    return b->items + i * b->size;
}

/* The result of a stepping loop that stopped with rc (or a read error). */
static td_st loop_result(int rc, td_st read_err)
{
    if (read_err != TD_ST_OK) return read_err;
    return rc == SQLITE_DONE ? TD_ST_OK : map_rc(rc);
}

static void bind_blob_or_null(sqlite3_stmt *st, int i, const void *v, size_t n)
{
    if (n)
        sqlite3_bind_blob(st, i, v, (int)n, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Copies a BLOB column into dst if it fits (like read_key); returns its length, 0 otherwise. */
static size_t col_blob(sqlite3_stmt *st, int i, void *dst, size_t cap)
{
    int n = sqlite3_column_bytes(st, i);
    if (n <= 0 || (size_t)n > cap) return 0;
    memcpy(dst, sqlite3_column_blob(st, i), (size_t)n);
    return (size_t)n;
}

static td_st v_issuer_policy_get(td_conn *c, const char *issuer_id, char **json_out)
{
    sqlite3_stmt *st = stmt(c, Q_POLICY_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        *json_out = col_dup(st, 0);
        if (!*json_out) r = TD_ST_ERROR;
    }
    finish(st);
    return r;
}

static td_st v_issuer_policy_put(td_conn *c, const char *issuer_id, const char *json)
{
    sqlite3_stmt *st = stmt(c, Q_POLICY_PUT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, json ? json : "");
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

/* ---- cards ---- */

static td_st v_card_insert(td_conn *c, const td_card_rec *r)
{
    sqlite3_stmt *st = stmt(c, Q_CARD_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->issuer_id);
    bind_text(st, 2, r->card_id);
    bind_text(st, 3, r->consumer_id);
    bind_text(st, 4, r->pan_fp);
    /* NOT NULL: an empty seal is an empty BLOB (a non-NULL pointer, length 0) */
    sqlite3_bind_blob(st, 5, r->pan_sealed, (int)r->pan_sealed_len, SQLITE_STATIC);
    bind_text(st, 6, r->last4);
    bind_text(st, 7, r->expiry);
    bind_text(st, 8, r->phone);
    bind_text(st, 9, r->email);
    sqlite3_bind_int(st, 10, (int)r->state);
    sqlite3_bind_int64(st, 11, r->seq);
    sqlite3_bind_int64(st, 12, r->created_ms);
    sqlite3_bind_int64(st, 13, r->updated_ms);
    return step_done(st);
}

static void read_card(sqlite3_stmt *st, td_card_rec *r)
{
    memset(r, 0, sizeof *r);
    col_copy(st, 0, r->issuer_id, sizeof r->issuer_id);
    col_copy(st, 1, r->card_id, sizeof r->card_id);
    col_copy(st, 2, r->consumer_id, sizeof r->consumer_id);
    col_copy(st, 3, r->pan_fp, sizeof r->pan_fp);
    r->pan_sealed_len = col_blob(st, 4, r->pan_sealed, sizeof r->pan_sealed);
    col_copy(st, 5, r->last4, sizeof r->last4);
    col_copy(st, 6, r->expiry, sizeof r->expiry);
    col_copy(st, 7, r->phone, sizeof r->phone);
    col_copy(st, 8, r->email, sizeof r->email);
    r->state = (td_card_state)sqlite3_column_int(st, 9);
    r->seq = sqlite3_column_int64(st, 10);
    r->created_ms = sqlite3_column_int64(st, 11);
    r->updated_ms = sqlite3_column_int64(st, 12);
}

static td_st card_get_by(td_conn *c, int q, const char *issuer_id, const char *key, td_card_rec *out)
{
    sqlite3_stmt *st = stmt(c, q);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, key);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_card(st, out);
    finish(st);
    return r;
}

static td_st v_card_get(td_conn *c, const char *issuer_id, const char *card_id, td_card_rec *out)
{
    return card_get_by(c, Q_CARD_GET, issuer_id, card_id, out);
}

static td_st v_card_by_fp(td_conn *c, const char *issuer_id, const char *pan_fp, td_card_rec *out)
{
    return card_get_by(c, Q_CARD_BY_FP, issuer_id, pan_fp, out);
}

static td_st v_card_update(td_conn *c, const td_card_rec *r, int64_t expect_seq)
{
    sqlite3_stmt *st = stmt(c, Q_CARD_UPDATE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->issuer_id);
    bind_text(st, 2, r->card_id);
    sqlite3_bind_int(st, 3, (int)r->state);
    sqlite3_bind_int64(st, 4, r->seq);
    sqlite3_bind_int64(st, 5, r->updated_ms);
    sqlite3_bind_int64(st, 6, expect_seq);
    td_st res = step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_CONFLICT;
    return res;
}

/* ---- digital cards ---- */

void td_dcard_rec_free(td_dcard_rec *r)
{
    free(r->device_json);
    free(r->idv_json);
    free(r->answer_json);
    r->device_json = r->idv_json = r->answer_json = NULL;
}

/* Room for every party name: "ISSUER,TSP,WALLET,MOBILE_PIN_LOCKED,CARDHOLDER". */
#define SUSPENDERS_MAX 64

static td_st v_dcard_insert(td_conn *c, const td_dcard_rec *r)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    sqlite3_stmt *st = stmt(c, Q_DCARD_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->issuer_id);
    bind_text(st, 3, r->card_id);
    sqlite3_bind_int(st, 4, (int)r->d.state);
    bind_text(st, 5, susp);
    sqlite3_bind_int64(st, 6, r->d.last_event_ms);
    sqlite3_bind_int64(st, 7, r->d.seq);
    sqlite3_bind_int(st, 8, r->d.stepup_open ? 1 : 0);
    sqlite3_bind_int(st, 9, r->d.idv_failures);
    sqlite3_bind_int64(st, 10, r->d.revivable_until_ms);
    sqlite3_bind_int(st, 11, (int)r->verdict);
    bind_text(st, 12, r->decision_reason);
    bind_text(st, 13, r->wallet_provider_id);
    bind_text(st, 14, r->token_requestor_id);
    bind_text(st, 15, r->token_storage_id);
    sqlite3_bind_int(st, 16, r->is_primary ? 1 : 0);
    bind_text(st, 17, r->correlation_id);
    bind_text(st, 18, r->digitize_op_id);
    bind_text(st, 19, r->last4);
    bind_text(st, 20, r->device_json ? r->device_json : "{}");
    bind_text(st, 21, r->idv_json ? r->idv_json : "[]");
    bind_text(st, 22, r->answer_json ? r->answer_json : "");
    sqlite3_bind_int64(st, 23, r->stepup_deadline_ms);
    sqlite3_bind_int64(st, 24, r->created_ms);
    sqlite3_bind_int64(st, 25, r->updated_ms);
    return step_done(st);
}

/* Fills r from a DCARD_COLS row. On failure (an unreadable suspenders set, out
 * of memory) r is still safe to pass to td_dcard_rec_free. */
static td_st read_dcard(sqlite3_stmt *st, td_dcard_rec *r)
{
    memset(r, 0, sizeof *r);
    col_copy(st, 0, r->id, sizeof r->id);
    col_copy(st, 1, r->issuer_id, sizeof r->issuer_id);
    col_copy(st, 2, r->card_id, sizeof r->card_id);
    r->d.state = (td_dcard_state)sqlite3_column_int(st, 3);
    const unsigned char *susp = sqlite3_column_text(st, 4);
    if (td_suspenders_parse(susp ? (const char *)susp : "", &r->d.suspended_by) != 0) {
        td_log(TD_LOG_ERROR, "store_corrupt", "digital card %s: suspended_by '%s'", r->id,
               susp ? (const char *)susp : "");
        return TD_ST_ERROR;
    }
    r->d.last_event_ms = sqlite3_column_int64(st, 5);
    r->d.seq = sqlite3_column_int64(st, 6);
    r->d.stepup_open = sqlite3_column_int(st, 7) != 0;
    r->d.idv_failures = sqlite3_column_int(st, 8);
    r->d.revivable_until_ms = sqlite3_column_int64(st, 9);
    r->verdict = (td_verdict)sqlite3_column_int(st, 10);
    col_copy(st, 11, r->decision_reason, sizeof r->decision_reason);
    col_copy(st, 12, r->wallet_provider_id, sizeof r->wallet_provider_id);
    col_copy(st, 13, r->token_requestor_id, sizeof r->token_requestor_id);
    col_copy(st, 14, r->token_storage_id, sizeof r->token_storage_id);
    r->is_primary = sqlite3_column_int(st, 15) != 0;
    col_copy(st, 16, r->correlation_id, sizeof r->correlation_id);
    col_copy(st, 17, r->digitize_op_id, sizeof r->digitize_op_id);
    col_copy(st, 18, r->last4, sizeof r->last4);
    r->device_json = col_dup(st, 19);
    r->idv_json = col_dup(st, 20);
    r->answer_json = col_dup(st, 21);
    r->stepup_deadline_ms = sqlite3_column_int64(st, 22);
    r->created_ms = sqlite3_column_int64(st, 23);
    r->updated_ms = sqlite3_column_int64(st, 24);
    /* the columns are NOT NULL: a NULL here is a failed allocation */
    if (!r->device_json || !r->idv_json || !r->answer_json) {
        td_dcard_rec_free(r);
        return TD_ST_ERROR;
    }
    return TD_ST_OK;
}

static td_st dcard_get_by(sqlite3_stmt *st, td_dcard_rec *out)
{
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        r = read_dcard(st, out);
        if (r != TD_ST_OK) td_dcard_rec_free(out);
    }
    finish(st);
    return r;
}

static td_st v_dcard_get(td_conn *c, const char *id, td_dcard_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, id);
    return dcard_get_by(st, out);
}

static td_st v_dcard_by_correlation(td_conn *c, const char *issuer_id, const char *correlation_id, td_dcard_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_BY_CORRELATION);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, correlation_id);
    return dcard_get_by(st, out);
}

static td_st v_dcard_update(td_conn *c, const td_dcard_rec *r, int64_t expect_seq)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    sqlite3_stmt *st = stmt(c, Q_DCARD_UPDATE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->d.state);
    bind_text(st, 3, susp);
    sqlite3_bind_int64(st, 4, r->d.last_event_ms);
    sqlite3_bind_int64(st, 5, r->d.seq);
    sqlite3_bind_int(st, 6, r->d.stepup_open ? 1 : 0);
    sqlite3_bind_int(st, 7, r->d.idv_failures);
    sqlite3_bind_int64(st, 8, r->d.revivable_until_ms);
    sqlite3_bind_int64(st, 9, r->stepup_deadline_ms);
    sqlite3_bind_int64(st, 10, r->updated_ms);
    sqlite3_bind_int64(st, 11, expect_seq);
    td_st res = step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_CONFLICT;
    return res;
}

/* Steps a bound DCARD_COLS query to the end, then calls fn for each row. */
static td_st dcard_list(sqlite3_stmt *st, void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    row_buf rows = {.size = sizeof(td_dcard_rec)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_dcard_rec *d = row_add(&rows);
        if (!d) {
            err = TD_ST_ERROR;
            break;
        }
        if ((err = read_dcard(st, d)) != TD_ST_OK) break;
    }
    finish(st);
    td_st r = loop_result(rc, err);
    for (size_t i = 0; i < rows.n; i++) {
        td_dcard_rec *d = row_at(&rows, i);
        if (r == TD_ST_OK) fn(d, arg);
        td_dcard_rec_free(d);
    }
    free(rows.items);
    return r;
}

static td_st v_dcard_list_by_card(td_conn *c, const char *issuer_id, const char *card_id,
                                  void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_LIST_BY_CARD);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, card_id);
    return dcard_list(st, fn, arg);
}

static td_st v_dcard_list_by_issuer(td_conn *c, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                                    int limit, void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_LIST_BY_ISSUER);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    /* 0 = unbounded, as the whole range of the created_ms index */
    sqlite3_bind_int64(st, 2, start_ms ? start_ms : INT64_MIN);
    sqlite3_bind_int64(st, 3, end_ms ? end_ms : INT64_MAX);
    sqlite3_bind_int(st, 4, limit);
    sqlite3_bind_int64(st, 5, offset);
    return dcard_list(st, fn, arg);
}

static td_st v_dcard_counts(td_conn *c, const char *issuer_id, const char *card_id, int64_t since_ms, int *live,
                            int *attempts)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_COUNTS);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, card_id);
    sqlite3_bind_int64(st, 3, since_ms);
    int n_live = 0, n_attempts = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = sqlite3_column_int(st, 1);
        if (td_decision_counts_token((td_dcard_state)sqlite3_column_int(st, 0))) n_live += n;
        n_attempts += sqlite3_column_int(st, 2);
    }
    finish(st);
    td_st r = loop_result(rc, TD_ST_OK);
    if (r == TD_ST_OK) {
        if (live) *live = n_live;
        if (attempts) *attempts = n_attempts;
    }
    return r;
}

/* ---- digital cards' events ---- */

static td_st v_dcard_event_append(td_conn *c, const td_dcard_event_rec *e)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_EVENT_APPEND);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, e->digital_card_id);
    sqlite3_bind_int64(st, 2, e->seq);
    bind_text(st, 3, e->issuer_id);
    bind_text(st, 4, e->event_id);
    bind_text(st, 5, e->source);
    bind_text(st, 6, e->type);
    bind_text(st, 7, e->outcome);
    bind_text(st, 8, e->why);
    sqlite3_bind_int64(st, 9, e->event_ms);
    sqlite3_bind_int64(st, 10, e->time_ms);
    bind_text(st, 11, e->detail_json ? e->detail_json : "{}");
    bind_text(st, 12, e->answer_json ? e->answer_json : "");
    return step_done(st);
}

static td_st v_dcard_event_answer(td_conn *c, const char *issuer_id, const char *source, const char *event_id,
                                  char **answer_out)
{
    sqlite3_stmt *st = stmt(c, Q_DCARD_EVENT_ANSWER);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, source);
    bind_text(st, 3, event_id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        *answer_out = col_dup(st, 0);
        if (!*answer_out) r = TD_ST_ERROR;
    }
    finish(st);
    return r;
}

/* ---- operations ---- */

static td_st v_op_insert(td_conn *c, const td_operation_rec *o)
{
    sqlite3_stmt *st = stmt(c, Q_OP_INSERT);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, o->id);
    bind_text(st, 2, o->issuer_id);
    bind_text(st, 3, o->digital_card_id);
    bind_text(st, 4, o->card_id);
    bind_text(st, 5, o->operation);
    bind_text(st, 6, o->status);
    bind_text(st, 7, o->requestor_type);
    bind_text(st, 8, o->reason);
    bind_text(st, 9, o->reason_code);
    bind_text(st, 10, o->error_code);
    bind_text(st, 11, o->correlation_id);
    sqlite3_bind_int64(st, 12, o->start_ms);
    sqlite3_bind_int64(st, 13, o->end_ms);
    return step_done(st);
}

static td_st v_op_get(td_conn *c, const char *issuer_id, const char *id, td_operation_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_OP_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    bind_text(st, 2, id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        memset(out, 0, sizeof *out);
        col_copy(st, 0, out->id, sizeof out->id);
        col_copy(st, 1, out->issuer_id, sizeof out->issuer_id);
        col_copy(st, 2, out->digital_card_id, sizeof out->digital_card_id);
        col_copy(st, 3, out->card_id, sizeof out->card_id);
        col_copy(st, 4, out->operation, sizeof out->operation);
        col_copy(st, 5, out->status, sizeof out->status);
        col_copy(st, 6, out->requestor_type, sizeof out->requestor_type);
        col_copy(st, 7, out->reason, sizeof out->reason);
        col_copy(st, 8, out->reason_code, sizeof out->reason_code);
        col_copy(st, 9, out->error_code, sizeof out->error_code);
        col_copy(st, 10, out->correlation_id, sizeof out->correlation_id);
        out->start_ms = sqlite3_column_int64(st, 11);
        out->end_ms = sqlite3_column_int64(st, 12);
    }
    finish(st);
    return r;
}

static td_st v_op_update(td_conn *c, const td_operation_rec *o)
{
    sqlite3_stmt *st = stmt(c, Q_OP_UPDATE);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, o->issuer_id);
    bind_text(st, 2, o->id);
    bind_text(st, 3, o->status);
    bind_text(st, 4, o->error_code);
    sqlite3_bind_int64(st, 5, o->end_ms);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

/* ---- the outbox ---- */

/* The notifications of one digital card go in order; so do the card-level
 * ones of one card. End-user messages keep their own order per digital card:
 * an OTP must not wait behind a notification the issuer backend is refusing. */
static void outbox_default_key(td_outbox_rec *o)
{
    if (o->order_key[0]) return;
    const char *prefix = strcmp(o->channel, "USER") == 0 ? "msg:" : "";
    if (o->digital_card_id[0])
        snprintf(o->order_key, sizeof o->order_key, "%s%s", prefix, o->digital_card_id);
    else
        snprintf(o->order_key, sizeof o->order_key, "%scard:%s", prefix, o->card_id);
}

static td_st v_outbox_insert(td_conn *c, td_outbox_rec *o)
{
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_INSERT);
    if (!st) return TD_ST_ERROR;
    if (!o->state[0]) td_strlcpy(o->state, "PENDING", sizeof o->state); /* a new row is owed */
    outbox_default_key(o);
    if (c->owner) c->owner->outbox_touched = true;
    bind_text(st, 1, o->issuer_id);
    bind_text(st, 2, o->channel);
    bind_text(st, 3, o->digital_card_id);
    bind_text(st, 4, o->card_id);
    sqlite3_bind_int64(st, 5, o->dcard_seq);
    bind_text(st, 6, o->operation_id);
    bind_text(st, 7, o->operation);
    bind_text(st, 8, o->status);
    bind_text(st, 9, o->error_code);
    bind_text(st, 10, o->source);
    bind_text(st, 11, o->correlation_id);
    bind_text(st, 12, o->wallet_provider_id);
    bind_text(st, 13, o->message);
    bind_text(st, 14, o->method_id);
    bind_blob_or_null(st, 15, o->secret_sealed, o->secret_len);
    sqlite3_bind_int64(st, 16, o->event_ms);
    sqlite3_bind_int64(st, 17, o->created_ms);
    sqlite3_bind_int64(st, 18, o->due_ms);
    bind_text(st, 19, o->state);
    bind_text(st, 20, o->order_key);
    sqlite3_bind_int(st, 21, o->attempts);
    sqlite3_bind_int(st, 22, o->last_status);
    bind_text(st, 23, o->last_error);
    sqlite3_bind_int64(st, 24, o->first_attempt_ms);
    sqlite3_bind_int64(st, 25, o->lease_until_ms);
    sqlite3_bind_int64(st, 26, o->done_ms);
    sqlite3_bind_int64(st, 27, o->replayed_ms);
    bind_text(st, 28, o->token_storage_id);
    sqlite3_bind_int(st, 29, o->is_primary);
    bind_text(st, 30, o->last4);
    sqlite3_bind_int(st, 31, o->digital_card_id[0] ? o->dcard_state : -1);
    td_st r = step_done(st);
    if (r == TD_ST_OK) o->id = sqlite3_last_insert_rowid(c->db);
    return r;
}

static td_st v_outbox_cancel(td_conn *c, const char *digital_card_id, const char *messages, int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_CANCEL);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, digital_card_id);
    bind_text(st, 2, messages ? messages : "");
    td_st r = step_done(st);
    if (r == TD_ST_OK && n_cancelled) *n_cancelled = sqlite3_changes(c->db);
    return r;
}

static td_st v_outbox_otp_times(td_conn *c, const char *digital_card_id, int64_t since_ms, int64_t *out, size_t cap,
                                size_t *n)
{
    *n = 0;
    if (cap == 0) return TD_ST_OK;
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_OTP_TIMES);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, digital_card_id);
    sqlite3_bind_int64(st, 2, since_ms);
    sqlite3_bind_int64(st, 3, cap > (size_t)INT64_MAX ? INT64_MAX : (int64_t)cap);
    int rc = SQLITE_DONE;
    while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
        out[(*n)++] = sqlite3_column_int64(st, 0);
    finish(st);
    if (*n == cap) return TD_ST_OK;
    return loop_result(rc, TD_ST_OK);
}

static void read_outbox(sqlite3_stmt *st, td_outbox_rec *o)
{
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    col_copy(st, 1, o->issuer_id, sizeof o->issuer_id);
    col_copy(st, 2, o->channel, sizeof o->channel);
    col_copy(st, 3, o->digital_card_id, sizeof o->digital_card_id);
    col_copy(st, 4, o->card_id, sizeof o->card_id);
    o->dcard_seq = sqlite3_column_int64(st, 5);
    col_copy(st, 6, o->operation_id, sizeof o->operation_id);
    col_copy(st, 7, o->operation, sizeof o->operation);
    col_copy(st, 8, o->status, sizeof o->status);
    col_copy(st, 9, o->error_code, sizeof o->error_code);
    col_copy(st, 10, o->source, sizeof o->source);
    col_copy(st, 11, o->correlation_id, sizeof o->correlation_id);
    col_copy(st, 12, o->wallet_provider_id, sizeof o->wallet_provider_id);
    col_copy(st, 13, o->message, sizeof o->message);
    col_copy(st, 14, o->method_id, sizeof o->method_id);
    o->secret_len = col_blob(st, 15, o->secret_sealed, sizeof o->secret_sealed);
    o->event_ms = sqlite3_column_int64(st, 16);
    o->created_ms = sqlite3_column_int64(st, 17);
    o->due_ms = sqlite3_column_int64(st, 18);
    col_copy(st, 19, o->state, sizeof o->state);
    col_copy(st, 20, o->order_key, sizeof o->order_key);
    o->attempts = sqlite3_column_int(st, 21);
    o->last_status = sqlite3_column_int(st, 22);
    col_copy(st, 23, o->last_error, sizeof o->last_error);
    o->first_attempt_ms = sqlite3_column_int64(st, 24);
    o->lease_until_ms = sqlite3_column_int64(st, 25);
    o->done_ms = sqlite3_column_int64(st, 26);
    o->replayed_ms = sqlite3_column_int64(st, 27);
    col_copy(st, 28, o->token_storage_id, sizeof o->token_storage_id);
    o->is_primary = sqlite3_column_int(st, 29) != 0;
    col_copy(st, 30, o->last4, sizeof o->last4);
    o->dcard_state = sqlite3_column_int(st, 31);
}

/* Steps a bound "id, OUTBOX_COLS" query to the end into rows (the caller frees rows->items). */
static td_st outbox_collect(sqlite3_stmt *st, row_buf *rows)
{
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_outbox_rec *o = row_add(rows);
        if (!o) {
            err = TD_ST_ERROR;
            break;
        }
        read_outbox(st, o);
    }
    finish(st);
    return loop_result(rc, err);
}

static td_st v_outbox_list(td_conn *c, const char *issuer_id, const char *state, int64_t after_id, int limit,
                           void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_LIST);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, after_id);
    bind_text(st, 3, state);
    sqlite3_bind_int(st, 4, limit);
    row_buf rows = {.size = sizeof(td_outbox_rec)};
    td_st r = outbox_collect(st, &rows);
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

static int outbox_by_id(const void *a, const void *b)
{
    int64_t x = ((const td_outbox_rec *)a)->id, y = ((const td_outbox_rec *)b)->id;
    return x < y ? -1 : x > y;
}

static td_st v_outbox_claim(td_conn *c, int64_t now_ms, int64_t lease_ms, int limit,
                            void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    if (limit <= 0) return TD_ST_OK;
    /* The issuers with delivery settings (few), each claimed in turn with what
     * is left of the limit; the first one changes from claim to claim, so an
     * issuer with a large backlog cannot keep the others waiting. */
    sqlite3_stmt *q = stmt(c, Q_DELIVERY_ISSUERS);
    if (!q) return TD_ST_ERROR;
    row_buf issuers = {.size = sizeof(((td_outbox_rec *)0)->issuer_id)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char *slot = row_add(&issuers);
        if (!slot) {
            err = TD_ST_ERROR;
            break;
        }
        col_copy(q, 0, slot, issuers.size);
    }
    finish(q);
    if (loop_result(rc, err) != TD_ST_OK) {
        free(issuers.items);
        return loop_result(rc, err);
    }
    row_buf rows = {.size = sizeof(td_outbox_rec)};
    td_st r = TD_ST_OK;
    unsigned first = c->owner ? c->owner->claim_turn++ : 0;
    for (size_t k = 0; r == TD_ST_OK && k < issuers.n && rows.n < (size_t)limit; k++) {
        sqlite3_stmt *st = stmt(c, Q_OUTBOX_CLAIM);
        if (!st) {
            r = TD_ST_ERROR;
            break;
        }
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int(st, 2, limit - (int)rows.n);
        sqlite3_bind_int64(st, 3, lease_ms);
        bind_text(st, 4, row_at(&issuers, (first + k) % issuers.n));
        r = outbox_collect(st, &rows);
    }
    free(issuers.items);
    if (r == TD_ST_OK && rows.n > 1) qsort(rows.items, rows.n, rows.size, outbox_by_id); /* RETURNING has no order */
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

static td_st v_outbox_next_due(td_conn *c, int64_t now_ms, int64_t *next_due_ms)
{
    *next_due_ms = 0;
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_NEXT_DUE);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, now_ms);
    td_st r = step_row(st);
    if (r == TD_ST_OK) *next_due_ms = sqlite3_column_int64(st, 0); /* NULL (none) reads as 0 */
    finish(st);
    return r;
}

/* last_error as stored: what td_outbox_rec holds, so a read never cuts it again. */
#define OUTBOX_ERROR_MAX (sizeof(((td_outbox_rec *)0)->last_error) - 1)

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* s[n] continues a sequence: cut before its lead */
        n--;
    return n;
}

static td_st v_outbox_attempt(td_conn *c, int64_t id, const char *state, int http_status, const char *error,
                              int64_t now_ms, int64_t retry_at_ms)
{
    if (!state || (strcmp(state, "PENDING") != 0 && strcmp(state, "DELIVERED") != 0 && strcmp(state, "DEAD") != 0))
        return TD_ST_INTERNAL;
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_ATTEMPT);
    if (!st) return TD_ST_ERROR;
    const char *e = error ? error : "";
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, state);
    sqlite3_bind_int(st, 3, http_status);
    sqlite3_bind_text(st, 4, e, (int)utf8_cut(e, OUTBOX_ERROR_MAX), SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, retry_at_ms);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static td_st v_outbox_replay(td_conn *c, const char *issuer_id, int64_t id, int64_t now_ms, int *n)
{
    if (n) *n = 0;
    if (id < 0) return TD_ST_NOT_FOUND; /* no such row; only 0 means all */
    sqlite3_stmt *st = stmt(c, id > 0 ? Q_OUTBOX_REPLAY_ONE : Q_OUTBOX_REPLAY_ALL);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    if (id > 0) {
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_int64(st, 3, now_ms);
    } else {
        sqlite3_bind_int64(st, 2, now_ms);
    }
    td_st r = step_done(st);
    if (r != TD_ST_OK) return r;
    int changed = sqlite3_changes(c->db);
    if (n) *n = changed;
    if (changed > 0 && c->owner) c->owner->outbox_touched = true;
    return id > 0 && changed == 0 ? TD_ST_NOT_FOUND : TD_ST_OK;
}

static td_st v_outbox_stats(td_conn *c, int64_t *pending, int64_t *in_flight, int64_t *dead, int64_t *oldest_ms)
{
    sqlite3_stmt *st = stmt(c, Q_OUTBOX_STATS);
    if (!st) return TD_ST_ERROR;
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        if (pending) *pending = sqlite3_column_int64(st, 0);
        if (in_flight) *in_flight = sqlite3_column_int64(st, 1);
        if (dead) *dead = sqlite3_column_int64(st, 2);
        if (oldest_ms) *oldest_ms = sqlite3_column_int64(st, 3); /* NULL (none) reads as 0 */
    }
    finish(st);
    return r;
}

/* ---- issuers' delivery settings ---- */

void td_delivery_rec_free(td_delivery_rec *r)
{
    free(r->templates_json);
    r->templates_json = NULL;
}

static td_st v_delivery_put(td_conn *c, const td_delivery_rec *d)
{
    sqlite3_stmt *st = stmt(c, Q_DELIVERY_PUT);
    if (!st) return TD_ST_ERROR;
    if (d->secret_len > sizeof d->secret_sealed) return TD_ST_INTERNAL;
    bind_text(st, 1, d->issuer_id);
    bind_text(st, 2, d->profile);
    bind_text(st, 3, d->base_url);
    bind_text(st, 4, d->auth);
    bind_blob_or_null(st, 5, d->secret_sealed, d->secret_len);
    bind_text(st, 6, d->oauth_token_url);
    bind_text(st, 7, d->oauth_client_id);
    bind_text(st, 8, d->oauth_scope);
    bind_text(st, 9, d->tls_cert_file);
    bind_text(st, 10, d->tls_key_file);
    bind_text(st, 11, d->tls_ca_file);
    bind_text(st, 12, d->tls_pinned_key);
    sqlite3_bind_int(st, 13, d->d1_batch_max);
    sqlite3_bind_int64(st, 14, d->max_age_ms);
    sqlite3_bind_int(st, 15, d->timeout_ms);
    bind_text(st, 16, d->messaging_url);
    bind_text(st, 17, d->templates_json ? d->templates_json : "");
    sqlite3_bind_int64(st, 18, d->updated_ms);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static td_st v_delivery_get(td_conn *c, const char *issuer_id, td_delivery_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_DELIVERY_GET);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, issuer_id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) {
        memset(out, 0, sizeof *out);
        col_copy(st, 0, out->issuer_id, sizeof out->issuer_id);
        col_copy(st, 1, out->profile, sizeof out->profile);
        col_copy(st, 2, out->base_url, sizeof out->base_url);
        col_copy(st, 3, out->auth, sizeof out->auth);
        out->secret_len = col_blob(st, 4, out->secret_sealed, sizeof out->secret_sealed);
        col_copy(st, 5, out->oauth_token_url, sizeof out->oauth_token_url);
        col_copy(st, 6, out->oauth_client_id, sizeof out->oauth_client_id);
        col_copy(st, 7, out->oauth_scope, sizeof out->oauth_scope);
        col_copy(st, 8, out->tls_cert_file, sizeof out->tls_cert_file);
        col_copy(st, 9, out->tls_key_file, sizeof out->tls_key_file);
        col_copy(st, 10, out->tls_ca_file, sizeof out->tls_ca_file);
        col_copy(st, 11, out->tls_pinned_key, sizeof out->tls_pinned_key);
        out->d1_batch_max = sqlite3_column_int(st, 12);
        out->max_age_ms = sqlite3_column_int64(st, 13);
        out->timeout_ms = sqlite3_column_int(st, 14);
        col_copy(st, 15, out->messaging_url, sizeof out->messaging_url);
        out->templates_json = col_dup(st, 16); /* NOT NULL column: NULL here is a failed allocation */
        out->updated_ms = sqlite3_column_int64(st, 17);
        if (!out->templates_json) r = TD_ST_ERROR;
    }
    finish(st);
    return r;
}

/* ---- timers ---- */

static td_st v_timer_insert(td_conn *c, td_timer_rec *t)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_INSERT);
    if (!st) return TD_ST_ERROR;
    if (!t->state[0]) td_strlcpy(t->state, "PENDING", sizeof t->state); /* a new timer waits */
    bind_text(st, 1, t->issuer_id);
    bind_text(st, 2, t->digital_card_id);
    bind_text(st, 3, t->kind);
    sqlite3_bind_int(st, 4, t->n);
    sqlite3_bind_int64(st, 5, t->due_ms);
    bind_text(st, 6, t->state);
    td_st r = step_done(st);
    if (r == TD_ST_OK) t->id = sqlite3_last_insert_rowid(c->db);
    return r;
}

static void read_timer(sqlite3_stmt *st, td_timer_rec *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    col_copy(st, 1, t->issuer_id, sizeof t->issuer_id);
    col_copy(st, 2, t->digital_card_id, sizeof t->digital_card_id);
    col_copy(st, 3, t->kind, sizeof t->kind);
    t->n = sqlite3_column_int(st, 4);
    t->due_ms = sqlite3_column_int64(st, 5);
    col_copy(st, 6, t->state, sizeof t->state);
}

static td_st v_timer_due(td_conn *c, int64_t now_ms, int limit, void (*fn)(const td_timer_rec *, void *), void *arg)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_DUE);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, limit);
    row_buf rows = {.size = sizeof(td_timer_rec)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_timer_rec *t = row_add(&rows);
        if (!t) {
            err = TD_ST_ERROR;
            break;
        }
        read_timer(st, t);
    }
    finish(st);
    td_st r = loop_result(rc, err);
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

static td_st v_timer_get(td_conn *c, int64_t id, td_timer_rec *out)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_GET);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, id);
    td_st r = step_row(st);
    if (r == TD_ST_OK) read_timer(st, out);
    finish(st);
    return r;
}

/* After a conditional timer update changed nothing: CONFLICT if the timer
 * exists (it was no longer PENDING), NOT_FOUND if it does not. */
static td_st timer_unchanged(td_conn *c, int64_t id)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_EXISTS);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, id);
    td_st r = step_row(st);
    finish(st);
    return r == TD_ST_OK ? TD_ST_CONFLICT : r;
}

static td_st v_timer_finish(td_conn *c, int64_t id, const char *state)
{
    if (!state || (strcmp(state, "FIRED") != 0 && strcmp(state, "CANCELLED") != 0)) return TD_ST_INTERNAL;
    sqlite3_stmt *st = stmt(c, Q_TIMER_FINISH);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, state);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = timer_unchanged(c, id);
    return r;
}

static td_st v_timer_cancel_dcard(td_conn *c, const char *digital_card_id, int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    sqlite3_stmt *st = stmt(c, Q_TIMER_CANCEL_DCARD);
    if (!st) return TD_ST_ERROR;
    bind_text(st, 1, digital_card_id);
    td_st r = step_done(st);
    if (r == TD_ST_OK && n_cancelled) *n_cancelled = sqlite3_changes(c->db);
    return r;
}

static td_st v_timer_reschedule(td_conn *c, int64_t id, int64_t due_ms)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_RESCHEDULE);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, due_ms);
    td_st r = step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = timer_unchanged(c, id);
    return r;
}

static td_st v_timer_next_due(td_conn *c, int64_t *due_ms)
{
    sqlite3_stmt *st = stmt(c, Q_TIMER_NEXT_DUE);
    if (!st) return TD_ST_ERROR;
    td_st r = step_row(st);
    if (r == TD_ST_OK) *due_ms = sqlite3_column_int64(st, 0);
    finish(st);
    return r;
}

static const td_store_ops OPS = {
    .ping = v_ping,
    .member_insert = v_member_insert,
    .member_get = v_member_get,
    .key_insert = v_key_insert,
    .key_get = v_key_get,
    .key_for_level = v_key_for_level,
    .key_list = v_key_list,
    .key_delete = v_key_delete,
    .cred_insert = v_cred_insert,
    .cred_get = v_cred_get,
    .issuer_insert = v_issuer_insert,
    .issuer_get = v_issuer_get,
    .request_insert = v_request_insert,
    .request_get = v_request_get,
    .request_by_consent = v_request_by_consent,
    .request_update = v_request_update,
    .token_insert = v_token_insert,
    .token_get = v_token_get,
    .token_update = v_token_update,
    .token_list = v_token_list,
    .event_append = v_event_append,
    .event_count = v_event_count,
    .idem_get = v_idem_get,
    .idem_put = v_idem_put,
    .issuer_policy_get = v_issuer_policy_get,
    .issuer_policy_put = v_issuer_policy_put,
    .card_insert = v_card_insert,
    .card_get = v_card_get,
    .card_by_fp = v_card_by_fp,
    .card_update = v_card_update,
    .dcard_insert = v_dcard_insert,
    .dcard_get = v_dcard_get,
    .dcard_by_correlation = v_dcard_by_correlation,
    .dcard_update = v_dcard_update,
    .dcard_list_by_card = v_dcard_list_by_card,
    .dcard_list_by_issuer = v_dcard_list_by_issuer,
    .dcard_counts = v_dcard_counts,
    .dcard_event_append = v_dcard_event_append,
    .dcard_event_answer = v_dcard_event_answer,
    .op_insert = v_op_insert,
    .op_get = v_op_get,
    .op_update = v_op_update,
    .outbox_insert = v_outbox_insert,
    .outbox_cancel = v_outbox_cancel,
    .outbox_otp_times = v_outbox_otp_times,
    .outbox_list = v_outbox_list,
    .outbox_claim = v_outbox_claim,
    .outbox_next_due = v_outbox_next_due,
    .outbox_attempt = v_outbox_attempt,
    .outbox_replay = v_outbox_replay,
    .outbox_stats = v_outbox_stats,
    .delivery_put = v_delivery_put,
    .delivery_get = v_delivery_get,
    .timer_insert = v_timer_insert,
    .timer_due = v_timer_due,
    .timer_get = v_timer_get,
    .timer_finish = v_timer_finish,
    .timer_cancel_dcard = v_timer_cancel_dcard,
    .timer_reschedule = v_timer_reschedule,
    .timer_next_due = v_timer_next_due,
};

/* ---- the writer: group commit ---- */

#define MAX_BATCH 256

static int batch_bucket(int n)
{
    int b = 0;
    while (n > 1 && b < 7) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Runs a writer statement; the raw SQLite result code, for retry decisions. */
static int writer_exec(sqlite_store *s, int q)
{
    sqlite3_stmt *st = prepared(s->writer, q);
    if (!st) return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return SQLITE_OK;
    if (rc != SQLITE_BUSY) td_log(TD_LOG_ERROR, "store_writer", "%s: %s", SQL[q], sqlite3_errmsg(s->writer->db));
    return rc;
}

/* BEGIN and COMMIT can meet SQLITE_BUSY when another process (a backup, the
 * sqlite3 shell) holds the lock past busy_timeout: retry a few times. */
static int writer_exec_retry(sqlite_store *s, int q)
{
    int rc = SQLITE_BUSY;
    for (int attempt = 0; attempt < 3 && (rc == SQLITE_BUSY || rc == SQLITE_LOCKED); attempt++)
        rc = writer_exec(s, q);
    return rc;
}

/* Runs one job inside its own savepoint so that its failure undoes only its
 * own changes. */
static td_st run_job(sqlite_store *s, td_job *j)
{
    if (td_mono_us() - j->queued_us > s->pub.job_timeout_us) return TD_ST_BUSY;
    if (writer_exec(s, Q_SAVEPOINT) != SQLITE_OK) return TD_ST_ERROR;
    td_st r = j->run(s->writer, j->arg);
    if (r != TD_ST_OK) writer_exec(s, Q_ROLLBACK_TO);
    writer_exec(s, Q_RELEASE);
    return r;
}

/* A group of lax jobs alone (td_job.lax: delivery bookkeeping) commits at
 * synchronous=NORMAL, any other at FULL. The pragma is switched only when the
 * kind of group changes. False when a group that needs FULL cannot have it:
 * the group is then not run (if NORMAL cannot be set, FULL simply stays). */
static bool set_durability(sqlite_store *s, const td_job *batch)
{
    bool lax = true;
    for (const td_job *j = batch; j && lax; j = j->next)
        lax = j->lax;
    if (lax == s->sync_normal) return true;
    if (lax) {
        if (writer_exec(s, Q_SYNC_NORMAL) == SQLITE_OK) s->sync_normal = true;
        return true;
    }
    if (writer_exec(s, Q_SYNC_FULL) != SQLITE_OK) return false;
    s->sync_normal = false;
    return true;
}

static void commit_batch(sqlite_store *s, td_job *batch, int n)
{
    td_st results[MAX_BATCH];
    td_st commit = TD_ST_OK;
    if (s->fault == 1 || !set_durability(s, batch) || writer_exec_retry(s, Q_BEGIN) != SQLITE_OK) {
        commit = TD_ST_ERROR;
    } else {
        int i = 0;
        for (td_job *j = batch; j; j = j->next)
            results[i++] = run_job(s, j);
        if (writer_exec_retry(s, Q_COMMIT) != SQLITE_OK) {
            writer_exec(s, Q_ROLLBACK);
            commit = TD_ST_ERROR;
        }
    }
    /* (A job rolled back to its savepoint may have set it: one spurious wake-up.) */
    if (commit == TD_ST_OK && s->outbox_touched && s->pub.on_outbox) s->pub.on_outbox();
    s->outbox_touched = false;
    pthread_mutex_lock(&s->mu);
    s->stats.commits++;
    if (s->sync_normal) s->stats.lax_commits++;
    s->stats.jobs += (uint64_t)n;
    s->stats.batch_hist[batch_bucket(n)]++;
    pthread_mutex_unlock(&s->mu);
    int i = 0;
    for (td_job *j = batch, *next; j; j = next, i++) {
        next = j->next; /* done() may free the job */
        j->done(j->arg, commit == TD_ST_OK ? results[i] : commit);
    }
}

/* Group commit pays its fixed costs (COMMIT, WAL write, fsync, checkpoint)
 * per transaction. When requests are arriving concurrently (the previous
 * batch had several jobs) and few are queued, wait a moment for more: a
 * bigger batch costs less CPU per write, which under load is what limits
 * throughput. A lone client (batches of one) never waits. Called locked. */
#define GATHER_MIN 16
#define GATHER_US 250
static void gather(sqlite_store *s)
{
    if (s->last_batch < 2 || s->queued >= GATHER_MIN || s->closing) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += GATHER_US * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (s->queued < GATHER_MIN && !s->closing)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) break;
}

static void *writer_main(void *arg)
{
    sqlite_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        /* An injected stall keeps the writer from taking jobs, as a writer stuck
         * in a long commit would: queued jobs wait and the reaper times them out. */
        while ((!s->head || s->fault == 2) && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head && s->closing) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        gather(s);
        if (!s->head) { /* the reaper took them while we gathered */
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        /* Take up to MAX_BATCH jobs: everything that queued while we committed. */
        td_job *batch = s->head, *last = s->head;
        int n = 1;
        while (last->next && n < MAX_BATCH) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head) s->tail = NULL;
        last->next = NULL;
        s->queued -= n;
        s->last_batch = n;
        pthread_mutex_unlock(&s->mu);
        commit_batch(s, batch, n);
    }
    return NULL;
}

/* Removes from the queue the jobs that waited longer than job_timeout_us and
 * fails them with TD_ST_BUSY (504: nothing changed). Jobs the writer already
 * took are inside a transaction and end with it. */
static void reap_expired(sqlite_store *s)
{
    td_job *expired = NULL, **tail = &expired;
    int64_t now = td_mono_us();
    pthread_mutex_lock(&s->mu);
    td_job **pp = &s->head, *prev = NULL;
    while (*pp) {
        td_job *j = *pp;
        if (now - j->queued_us > s->pub.job_timeout_us) {
            s->queued--;
            *pp = j->next;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        } else {
            prev = j;
            pp = &j->next;
        }
    }
    s->tail = prev;
    pthread_mutex_unlock(&s->mu);
    for (td_job *j = expired, *next; j; j = next) {
        next = j->next;
        j->done(j->arg, TD_ST_BUSY);
    }
}

static void *reaper_main(void *arg)
{
    sqlite_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (closing) break;
        reap_expired(s);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int submit(td_store *pub, td_job *job)
{
    sqlite_store *s = (sqlite_store *)pub;
    job->next = NULL;
    job->queued_us = td_mono_us();
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

typedef struct {
    td_job job;
    td_st (*run)(td_conn *, void *);
    void *arg;
    td_st result;
    bool finished;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sync_job;

static td_st sync_run(td_conn *c, void *arg)
{
    sync_job *sj = arg;
    return sj->run(c, sj->arg);
}

static void sync_done(void *arg, td_st st)
{
    sync_job *sj = arg;
    pthread_mutex_lock(&sj->mu);
    sj->result = st;
    sj->finished = true;
    pthread_cond_signal(&sj->cv);
    pthread_mutex_unlock(&sj->mu);
}

static td_st run_sync(td_store *pub, td_st (*run)(td_conn *, void *), void *arg)
{
    sync_job sj = {.job = {.run = sync_run, .done = sync_done}, .run = run, .arg = arg};
    sj.job.arg = &sj;
    pthread_mutex_init(&sj.mu, NULL);
    pthread_cond_init(&sj.cv, NULL);
    if (submit(pub, &sj.job) != 0) return TD_ST_ERROR;
    pthread_mutex_lock(&sj.mu);
    while (!sj.finished)
        pthread_cond_wait(&sj.cv, &sj.mu);
    pthread_mutex_unlock(&sj.mu);
    pthread_mutex_destroy(&sj.mu);
    pthread_cond_destroy(&sj.cv);
    return sj.result;
}

static void stats(td_store *pub, td_store_stats *out)
{
    sqlite_store *s = (sqlite_store *)pub;
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

static void inject_fault(td_store *pub, int fault)
{
    sqlite_store *s = (sqlite_store *)pub;
    pthread_mutex_lock(&s->mu);
    s->fault = fault;
    pthread_cond_broadcast(&s->cv); /* a stalled writer resumes */
    pthread_mutex_unlock(&s->mu);
}

static void store_close(td_store *pub)
{
    sqlite_store *s = (sqlite_store *)pub;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started) pthread_join(s->writer_thread, NULL);
    if (s->reaper_started) pthread_join(s->reaper_thread, NULL);
    conn_close(s->writer);
    for (td_conn *c = s->readers, *next; c; c = next) {
        next = c->next_reader;
        conn_close(c);
    }
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* Creates the directory holding the database file, like `mkdir -p`. */
static void make_parent_dirs(const char *path)
{
    char dir[1024];
    if (td_strlcpy(dir, path, sizeof dir)) return;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(dir, 0700);
        *p = '/';
    }
}

td_store *td_store_sqlite_open(const char *path, char *err, size_t cap)
{
    /* SQLite's memory statistics take a global mutex on every allocation, which
     * the HTTP threads and the writer contended for (docs/performance.md). It
     * can only be set before SQLite initialises; later calls just fail. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (td_strlcpy(s->path, path, sizeof s->path)) {
        snprintf(err, cap, "store path too long");
        free(s);
        return NULL;
    }
    make_parent_dirs(s->path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_key_create(&s->reader_key, NULL);
    s->pub.ops = &OPS;
    s->pub.reader = reader;
    s->pub.submit = submit;
    s->pub.run_sync = run_sync;
    s->pub.stats = stats;
    s->pub.inject_fault = inject_fault;
    s->pub.close = store_close;
    s->pub.job_timeout_us = 10 * 1000 * 1000;
    s->writer = conn_open(s, err, cap);
    if (!s->writer || migrate(s->writer, err, cap) != 0) {
        store_close(&s->pub);
        return NULL;
    }
    if (pthread_create(&s->writer_thread, NULL, writer_main, s) != 0) {
        snprintf(err, cap, "cannot start the writer thread");
        store_close(&s->pub);
        return NULL;
    }
    pthread_setname_np(s->writer_thread, "td-writer"); /* names it in top -H, perf and the benchmarks */
    s->thread_started = true;
    if (pthread_create(&s->reaper_thread, NULL, reaper_main, s) != 0) {
        snprintf(err, cap, "cannot start the reaper thread");
        store_close(&s->pub);
        return NULL;
    }
    pthread_setname_np(s->reaper_thread, "td-reaper"); /* names it in top -H, perf and the benchmarks */
    s->reaper_started = true;
    return &s->pub;
}
