/* store_copy.h — the insides of `tokenctl store copy` and `store verify`
 * (cmd_store.c), shared by their files and by nothing else: the job, the
 * tables and their columns, and each part's entry points. Names shared across
 * the files start with sc_ ("store copy"): tdcore has pg_* names of its own. */
#ifndef TD_CLI_STORE_COPY_H
#define TD_CLI_STORE_COPY_H

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

/* ---- what is copied (store_catalog.c) ---- */

typedef struct {
    const char *name;
    const char *pk[3];
} table_def;

#define N_TABLES ((size_t)17)
extern const table_def sc_tables[]; /* N_TABLES of them */

typedef enum { V_INT, V_TEXT, V_BLOB } vkind;

#define NAME_MAX_LEN 64
#define MAX_COLS 64

typedef struct {
    char name[NAME_MAX_LEN]; /* the PostgreSQL column */
    vkind kind;
    bool rowid;    /* read from SQLite's rowid */
    bool identity; /* its sequence must end up past the copied values */
} column;

typedef struct {
    const table_def *def;
    column cols[MAX_COLS];
    int ncols;
    int64_t sqlite_seq; /* sqlite_sequence's value for the table (AUTOINCREMENT), 0 if none */
    int64_t src_rows, dst_rows;
    uint8_t src_sum[crypto_hash_sha256_BYTES], dst_sum[crypto_hash_sha256_BYTES];
    bool seq_behind; /* verify: an identity sequence is not past the copied ids */
} table;

#define N_SECRETS 4

typedef struct {
    const char *cmd; /* "copy" or "verify", for messages */
    const char *src_path, *dst_url;
    char safe_dst[1024];          /* dst_url without its password */
    char secrets[N_SECRETS][256]; /* the password as written and percent-decoded: scrubbed from messages */
    sqlite3 *db;
    PGconn *pg;
    bool in_tx, copying;
    table t[N_TABLES];
} job;

bool sc_known_table(const char *name);
/* SQLite columns PostgreSQL does without. */
bool sc_sqlite_only(const char *table_name, const char *col);
const column *sc_find_col(const table *t, const char *name);
/* "SELECT cols FROM table ORDER BY pk" for either engine: the digest's order. */
void sc_select_sql(const table *t, bool pg, char *out, size_t cap);
/* The columns both engines have, in PostgreSQL's order, with their kinds. */
int sc_plan_table(job *j, table *t);

/* ---- messages, never with the password (store_msg.c) ---- */

/* Prints "tokenctl: store <cmd>: <message>" on one line, passwords scrubbed; returns rc. */
int sc_fail(const job *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets j->safe_dst from url and keeps its passwords for scrubbing. */
void sc_redact(job *j, const char *url);

/* ---- the content digest and COPY's text format (store_digest.c) ---- */

void sc_digest_start(crypto_hash_sha256_state *h, const table *t);
void sc_digest_row(crypto_hash_sha256_state *h);
void sc_digest_null(crypto_hash_sha256_state *h);
void sc_digest_int(crypto_hash_sha256_state *h, int64_t v);
void sc_digest_text(crypto_hash_sha256_state *h, const void *p, size_t n);
void sc_digest_blob(crypto_hash_sha256_state *h, const uint8_t *p, size_t n);
/* A bytea as PostgreSQL shows it (\x and hex); -1 if it is not in that form. */
int sc_digest_bytea_hex(crypto_hash_sha256_state *h, const char *v, size_t n);

/* COPY data goes through a td_buf (util/buf.h), sent and emptied each time
 * it passes 1 MiB: one row's values are all that can push it further. */
#define SC_COPY_BUF_MAX (64u << 20)

void sc_buf_copy_text(td_buf *b, const char *s, size_t n);
void sc_buf_copy_blob(td_buf *b, const uint8_t *p, size_t n);

/* ---- the source: SQLite, read-only, one read transaction (store_source.c) ---- */

int sc_open_source(job *j);
void sc_close_source(job *j);
bool sc_source_has_column(const job *j, const char *table_name, const char *col);
/* Refuses a source column that has no counterpart in t's planned columns. */
int sc_source_columns_land(job *j, const table *t);
/* Reads t->sqlite_seq (0 when the table has none). */
void sc_source_sequence(job *j, table *t);
/* Row count and digest of the source's table; with copy, every row sent to the COPY in progress. */
int sc_scan_source(job *j, table *t, bool copy);

/* ---- the target: PostgreSQL (store_target.c) ---- */

int sc_connect_target(job *j);
void sc_close_target(job *j);
/* A statement's result if its status is want; otherwise NULL, *rc set after a message naming what. */
PGresult *sc_pg_exec(job *j, const char *sql, int nparams, const char *const *params, ExecStatusType want,
                     const char *what, int *rc);
int sc_pg_cmd(job *j, const char *sql, const char *what);
/* Sends what b holds to the COPY in progress and empties b. */
int sc_pg_put_copy(job *j, td_buf *b);
int sc_lock_and_check_empty(job *j);
int sc_copy_table(job *j, table *t);
int sc_scan_target(job *j, table *t);
int sc_fix_sequence(job *j, table *t, const column *c, bool set, bool *behind);
void sc_analyze(job *j);

#endif
