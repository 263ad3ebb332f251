/* store_catalog.c — what `tokenctl store copy` copies: tokend's tables in
 * foreign-key order with their keys, and for each table the columns both
 * engines have (the plan), read in key order by the SQL built here. */
#include <string.h>

#include "cli/cli.h"
#include "cli/store_copy.h"
#include "util/util.h"

/* Every table tokend keeps, parents first (member_keys refers to members,
 * issuer_delivery to issuers), each with its PostgreSQL primary key: the
 * order the digests read rows in. Issuer-owned tables are keyed by issuer
 * first there (pg migration 002); SQLite keeps its keys on id alone, which
 * makes (issuer_id, id) unique too, so both engines read the same order.
 * schema_migrations is each engine's own. */
const table_def sc_tables[] = {
    {"members", {"id"}},
    {"member_keys", {"member_id", "key_id"}},
    {"credentials", {"hash"}},
    {"issuers", {"id"}},
    {"issuer_delivery", {"issuer_id"}},
    {"token_requests", {"id"}},
    {"tokens", {"id"}},
    {"token_events", {"token_id", "seq"}},
    {"idempotency", {"scope", "key"}},
    {"cards", {"issuer_id", "card_id"}},
    {"digital_cards", {"issuer_id", "id"}},
    {"dcard_events", {"issuer_id", "digital_card_id", "seq"}},
    {"operations", {"issuer_id", "id"}},
    {"outbox", {"issuer_id", "id"}},
    {"timers", {"issuer_id", "id"}},
    {"store_meta", {"name"}},
    {"credential_events", {"id"}},
};
/* N_TABLES sizes the job's arrays in store_copy.h: a table added here must count there. */
_Static_assert(sizeof sc_tables / sizeof sc_tables[0] == N_TABLES, "N_TABLES is not the number of tables");

bool sc_known_table(const char *name)
{
    for (size_t i = 0; i < N_TABLES; i++)
        if (!strcmp(sc_tables[i].name, name)) return true;
    return false;
}

/* SQLite columns PostgreSQL does without: outbox.head is kept by SQLite's
 * triggers for its claim query; PostgreSQL's claim finds heads itself. */
bool sc_sqlite_only(const char *table_name, const char *col)
{
    return !strcmp(table_name, "outbox") && !strcmp(col, "head");
}

/* PostgreSQL columns filled from SQLite's rowid: digital_cards.seq_no, the
 * insertion order that breaks ties in "oldest first" lists. */
static bool from_rowid(const char *table_name, const char *col)
{
    return !strcmp(table_name, "digital_cards") && !strcmp(col, "seq_no");
}

const column *sc_find_col(const table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name)) return &t->cols[i];
    return NULL;
}

/* "ORDER BY" of a table: its primary key; text in byte order (PostgreSQL's
 * "C" collation is SQLite's BINARY). */
static void order_by(const table *t, bool pg, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, " ORDER BY ");
    for (int k = 0; k < 3 && t->def->pk[k] && n < cap; k++) {
        const column *c = sc_find_col(t, t->def->pk[k]);
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"%s", k ? ", " : "", t->def->pk[k],
                              pg && c && c->kind == V_TEXT ? " COLLATE \"C\"" : "");
    }
}

void sc_select_sql(const table *t, bool pg, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "SELECT ");
    for (int i = 0; i < t->ncols && n < cap; i++) {
        const column *c = &t->cols[i];
        if (c->rowid && !pg)
            n += (size_t)snprintf(out + n, cap - n, "%srowid", i ? ", " : "");
        else
            n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? ", " : "", c->name);
    }
    if (n < cap) n += (size_t)snprintf(out + n, cap - n, " FROM \"%s\"", t->def->name);
    if (n < cap) order_by(t, pg, out + n, cap - n);
}

/* Column names go into SQL between double quotes: only plain ones are taken. */
static bool plain_name(const char *s)
{
    if (!*s || strlen(s) >= NAME_MAX_LEN) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* The kinds of value the digest and COPY know, by PostgreSQL's data_type. */
static bool kind_of(const char *type, vkind *kind)
{
    if (!strcmp(type, "bigint") || !strcmp(type, "integer") || !strcmp(type, "smallint"))
        *kind = V_INT;
    else if (!strcmp(type, "text") || !strcmp(type, "character varying"))
        *kind = V_TEXT;
    else if (!strcmp(type, "bytea"))
        *kind = V_BLOB;
    else
        return false;
    return true;
}

/* Row i of plan_table's query: the column added to t, skipped (the target's
 * own, with a default), or refused. */
static int plan_column(job *j, table *t, const PGresult *r, int i)
{
    const char *name = PQgetvalue(r, i, 0), *type = PQgetvalue(r, i, 1);
    bool identity = !strcmp(PQgetvalue(r, i, 2), "YES"), optional = PQgetvalue(r, i, 3)[0] == 't';
    bool rowid = from_rowid(t->def->name, name);
    if (!plain_name(name))
        return sc_fail(j, CLI_HTTP_ERROR, "the target's table %s has a column named unexpectedly", t->def->name);
    if (!rowid && !sc_source_has_column(j, t->def->name, name)) {
        if (optional) return CLI_OK; /* the target's own column: its default */
        return sc_fail(j, CLI_HTTP_ERROR,
                       "the target's %s.%s has no counterpart in the source: use the tokenctl built with this tokend",
                       t->def->name, name);
    }
    vkind kind;
    if (!kind_of(type, &kind))
        return sc_fail(j, CLI_HTTP_ERROR, "the target's %s.%s has a type this tokenctl does not copy (%.40s)",
                       t->def->name, name, type);
    if (t->ncols == MAX_COLS)
        return sc_fail(j, CLI_HTTP_ERROR, "the target's table %s has too many columns", t->def->name);
    column *c = &t->cols[t->ncols++];
    td_strlcpy(c->name, name, sizeof c->name);
    c->kind = rowid ? V_INT : kind;
    c->rowid = rowid;
    c->identity = identity;
    return CLI_OK;
}

/* Refuses a column one side has and the other cannot do without. */
int sc_plan_table(job *j, table *t)
{
    static const char SQL[] =
        "SELECT column_name, data_type, is_identity, "
        "(column_default IS NOT NULL OR is_nullable = 'YES' OR is_identity = 'YES' OR is_generated = 'ALWAYS') "
        "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 "
        "ORDER BY ordinal_position";
    int rc = CLI_OK;
    const char *params[1] = {t->def->name};
    PGresult *r = sc_pg_exec(j, SQL, 1, params, PGRES_TUPLES_OK, "cannot read the target's columns", &rc);
    if (!r) return rc;
    t->ncols = 0;
    if (PQntuples(r) == 0)
        rc = sc_fail(j, CLI_HTTP_ERROR, "the target has no table %s (is it a tokend database?)", t->def->name);
    for (int i = 0; i < PQntuples(r) && rc == CLI_OK; i++)
        rc = plan_column(j, t, r, i);
    PQclear(r);
    if (rc != CLI_OK) return rc;

    rc = sc_source_columns_land(j, t);
    for (int k = 0; rc == CLI_OK && k < 3 && t->def->pk[k]; k++)
        if (!sc_find_col(t, t->def->pk[k]))
            rc = sc_fail(j, CLI_HTTP_ERROR, "the key column %s.%s is missing", t->def->name, t->def->pk[k]);
    if (rc == CLI_OK) sc_source_sequence(j, t);
    return rc;
}
