/* rekey.c — master key rotation: every value sealed with the old master key
 * resealed with the new one, one row per transaction, with the store marked
 * (store_meta "rekey_to") so that no tokend starts half-way; the new key's
 * check is recorded last, in one transaction with the idempotency hashing
 * key and the audit event (docs/operations.md, "Rotating the master key").
 * Crash-safe and resumable without a cursor: a value is authenticated
 * encryption, so whether it opens with the new key says whether it was done. */
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/cards.h"
#include "service/service.h"
#include "util/util.h"

#define CHECK_NAME "master_key_check"

typedef enum { ROW_DONE_BEFORE, ROW_RESEALED, ROW_UNREADABLE } row_outcome;

/* ---- one value ---- */

/* The new seal (rc, sealed, sn as a seal call left them) into the row's
 * buffer; freed either way. */
static row_outcome put_sealed(int rc, uint8_t *sealed, size_t sn, uint8_t *blob, size_t *len, size_t cap)
{
    row_outcome o = rc || sn > cap ? ROW_UNREADABLE : ROW_RESEALED;
    if (o == ROW_RESEALED) {
        memcpy(blob, sealed, sn);
        *len = sn;
    }
    free(sealed);
    return o;
}

/* A secret sealed with td_seal: opens with new → as it is; with old → resealed. */
static row_outcome reseal_plain(const td_rekey *rk, uint8_t *blob, size_t *len, size_t cap)
{
    uint8_t *plain = NULL, *sealed = NULL;
    size_t n = 0, sn = 0;
    if (td_open(rk->new_key, blob, *len, &plain, &n) == 0) {
        sodium_memzero(plain, n);
        free(plain);
        return ROW_DONE_BEFORE;
    }
    if (td_open(rk->old_key, blob, *len, &plain, &n) != 0) return ROW_UNREADABLE;
    int rc = td_seal(rk->new_key, plain, n, &sealed, &sn);
    sodium_memzero(plain, n);
    free(plain);
    return put_sealed(rc, sealed, sn, blob, len, cap);
}

/* A text sealed with td_pan_seal under aad (a PAN, a card's contact). */
static row_outcome reseal_pan(const td_rekey *rk, uint8_t *blob, size_t *len, size_t cap, const char *aad, char *text,
                              size_t text_cap)
{
    if (td_pan_open(rk->new_key, blob, *len, aad, text, text_cap) == 0) return ROW_DONE_BEFORE;
    if (td_pan_open(rk->old_key, blob, *len, aad, text, text_cap) != 0) return ROW_UNREADABLE;
    uint8_t *sealed = NULL;
    size_t sn = 0;
    int rc = td_pan_seal(rk->new_key, text, aad, &sealed, &sn);
    return put_sealed(rc, sealed, sn, blob, len, cap);
}

/* A card: its PAN (and fingerprint, keyed with the master key) and contact
 * are rewritten together, so the PAN says for both. */
static row_outcome reseal_card(const td_rekey *rk, td_sealed_rec *r)
{
    char aad[sizeof r->owner + sizeof r->id + 10], pan[64], contact[sizeof r->blob2];
    td_card_pan_aad(r->owner, r->id, aad, sizeof aad);
    row_outcome o = reseal_pan(rk, r->blob, &r->blob_len, sizeof r->blob, aad, pan, sizeof pan);
    if (o == ROW_RESEALED) td_pan_fingerprint(rk->new_key, pan, r->fp);
    sodium_memzero(pan, sizeof pan);
    if (o != ROW_RESEALED || !r->blob2_len) return o;
    td_card_contact_aad(r->owner, r->id, aad, sizeof aad);
    row_outcome oc = reseal_pan(rk, r->blob2, &r->blob2_len, sizeof r->blob2, aad, contact, sizeof contact);
    sodium_memzero(contact, sizeof contact);
    return oc == ROW_UNREADABLE ? ROW_UNREADABLE : ROW_RESEALED;
}

/* An idempotency record's answer, bound to its scope, key and request hash. */
static row_outcome reseal_answer(const td_rekey *rk, td_sealed_rec *r)
{
    char *aad = td_idem_answer_aad(r->owner, r->id, r->fp);
    if (!aad) return ROW_UNREADABLE;
    char *plain = NULL, *sealed = NULL;
    row_outcome o = ROW_RESEALED;
    if (td_idem_open_answer(rk->new_key, aad, r->text ? r->text : "", &plain) == 0)
        o = ROW_DONE_BEFORE;
    else if (td_idem_open_answer(rk->old_key, aad, r->text ? r->text : "", &plain) != 0)
        o = ROW_UNREADABLE;
    else if (td_idem_seal_answer(rk->new_key, aad, plain, &sealed) != 0)
        o = ROW_UNREADABLE;
    free(aad);
    if (plain) {
        sodium_memzero(plain, strlen(plain));
        free(plain);
    }
    if (o != ROW_RESEALED) return o;
    free(r->text);
    r->text = sealed;
    return ROW_RESEALED;
}

static row_outcome reseal(const td_rekey *rk, td_sealed_rec *r)
{
    switch (r->kind) {
    case TD_SEALED_CARD: return reseal_card(rk, r);
    case TD_SEALED_IDEM: return reseal_answer(rk, r);
    default: return reseal_plain(rk, r->blob, &r->blob_len, sizeof r->blob);
    }
}

static const char *const KIND_NAME[TD_SEALED_KINDS] = {"member key", "card", "delivery secret", "outbox OTP",
                                                       "idempotency answer"};

/* ---- one row per transaction ---- */

typedef struct {
    td_rekey *rk;
    td_sealed_kind kind;
    td_sealed_rec cursor; /* the last row seen */
    bool end;             /* no row after the cursor */
    row_outcome outcome;
} step_job;

static td_st run_step(td_conn *c, void *arg)
{
    step_job *j = arg;
    const td_store_ops *ops = j->rk->store->ops;
    td_sealed_rec r = {0};
    td_st st = ops->sealed_next(c, j->kind, &j->cursor, &r);
    j->end = st == TD_ST_NOT_FOUND;
    if (st != TD_ST_OK) return j->end ? TD_ST_OK : st;
    j->outcome = reseal(j->rk, &r);
    if (j->outcome == ROW_RESEALED) st = ops->sealed_put(c, &r);
    td_sealed_rec_free(&j->cursor);
    j->cursor = r; /* the cursor keeps only its key fields in use */
    sodium_memzero(j->cursor.blob, sizeof j->cursor.blob);
    sodium_memzero(j->cursor.blob2, sizeof j->cursor.blob2);
    return j->outcome == ROW_UNREADABLE ? TD_ST_INTERNAL : st;
}

static int reseal_kind(td_rekey *rk, td_sealed_kind kind)
{
    step_job j = {.rk = rk, .kind = kind};
    for (;;) {
        td_st st = rk->store->run_sync(rk->store, run_step, &j);
        if (st == TD_ST_OK && j.end) break;
        if (st != TD_ST_OK) {
            if (j.outcome == ROW_UNREADABLE)
                snprintf(rk->err, sizeof rk->err, "a %s (%s %s%s) opens with neither key; nothing after it was done",
                         KIND_NAME[kind], j.cursor.owner, j.cursor.id, kind == TD_SEALED_OUTBOX ? "(outbox row)" : "");
            else
                snprintf(rk->err, sizeof rk->err, "store error %d while resealing %s values", (int)st, KIND_NAME[kind]);
            td_sealed_rec_free(&j.cursor);
            return -1;
        }
        if (j.outcome == ROW_RESEALED) {
            rk->resealed++;
            if (rk->kill_after && rk->resealed >= rk->kill_after) raise(SIGKILL); /* test hook: a crash here */
        } else {
            rk->already++;
        }
    }
    td_sealed_rec_free(&j.cursor);
    return 0;
}

/* ---- start and finish ---- */

typedef struct {
    td_rekey *rk;
    enum { START_GO, START_DONE, START_WRONG_OLD, START_OTHER_NEW } verdict;
    bool marked; /* this run wrote the marker */
} start_job;

static td_st run_start(td_conn *c, void *arg)
{
    start_job *j = arg;
    const td_store_ops *ops = j->rk->store->ops;
    uint8_t check[256], marker[256];
    size_t cn = 0, mn = 0;
    td_st st = ops->meta_get(c, CHECK_NAME, check, sizeof check, &cn);
    if (st != TD_ST_OK) return st; /* NOT_FOUND: no tokend ever served it */
    st = ops->meta_get(c, TD_META_REKEY_TO, marker, sizeof marker, &mn);
    if (st == TD_ST_OK) { /* a rotation under way: only to the same key */
        j->verdict = td_master_check_opens(j->rk->new_key, marker, mn) ? START_GO : START_OTHER_NEW;
        return TD_ST_OK;
    }
    if (st != TD_ST_NOT_FOUND) return st;
    if (td_master_check_opens(j->rk->new_key, check, cn)) {
        j->verdict = START_DONE;
        return TD_ST_OK;
    }
    if (!td_master_check_opens(j->rk->old_key, check, cn)) {
        j->verdict = START_WRONG_OLD;
        return TD_ST_OK;
    }
    uint8_t *sealed = NULL;
    size_t len = 0;
    if (td_master_check_seal(j->rk->new_key, &sealed, &len)) return TD_ST_INTERNAL;
    st = ops->meta_put(c, TD_META_REKEY_TO, sealed, len);
    free(sealed);
    j->verdict = START_GO;
    j->marked = st == TD_ST_OK;
    return st;
}

static td_st run_serving(td_conn *c, void *arg)
{
    td_rekey *rk = ((start_job *)arg)->rk;
    int64_t n = 0;
    td_st st = rk->store->ops->serving_sessions(c, &n);
    if (st == TD_ST_OK && n > 0) {
        snprintf(rk->err, sizeof rk->err,
                 "%lld PostgreSQL sessions of a serving tokend are connected to this database: stop every node first",
                 (long long)n);
        return TD_ST_CONFLICT;
    }
    return st;
}

static td_st run_unmark(td_conn *c, void *arg)
{
    return ((start_job *)arg)->rk->store->ops->meta_delete(c, TD_META_REKEY_TO);
}

/* The hashing key idempotency records were hashed with: kept from the first
 * master key on (a hash cannot be recomputed without its request). */
static td_st current_idem_hash_key(td_conn *c, const td_rekey *rk, uint8_t out[32])
{
    uint8_t sealed[128], *plain = NULL;
    size_t n = 0, len = 0;
    td_st st = rk->store->ops->meta_get(c, TD_META_IDEM_HASH_KEY, sealed, sizeof sealed, &n);
    if (st == TD_ST_NOT_FOUND) {
        td_idem_hash_key(rk->old_key, out);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    if (td_open(rk->old_key, sealed, n, &plain, &len) || len != 32) {
        free(plain);
        return TD_ST_INTERNAL;
    }
    memcpy(out, plain, 32);
    sodium_memzero(plain, len);
    free(plain);
    return TD_ST_OK;
}

static td_st put_sealed_meta(td_conn *c, const td_rekey *rk, const char *name, const uint8_t *v, size_t n)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    if (td_seal(rk->new_key, v, n, &sealed, &len)) return TD_ST_INTERNAL;
    td_st st = rk->store->ops->meta_put(c, name, sealed, len);
    free(sealed);
    return st;
}

static td_st run_finish(td_conn *c, void *arg)
{
    td_rekey *rk = arg;
    const td_store_ops *ops = rk->store->ops;
    uint8_t hk[32], *check = NULL;
    size_t len = 0;
    td_st st = current_idem_hash_key(c, rk, hk);
    if (st == TD_ST_OK) st = put_sealed_meta(c, rk, TD_META_IDEM_HASH_KEY, hk, sizeof hk);
    sodium_memzero(hk, sizeof hk);
    if (st == TD_ST_OK && td_master_check_seal(rk->new_key, &check, &len)) st = TD_ST_INTERNAL;
    if (st == TD_ST_OK) st = ops->meta_put(c, CHECK_NAME, check, len);
    free(check);
    if (st == TD_ST_OK) st = ops->meta_delete(c, TD_META_REKEY_TO);
    char detail[96];
    snprintf(detail, sizeof detail, "{\"resealed\":%lld,\"resealedBefore\":%lld}", (long long)rk->resealed,
             (long long)rk->already);
    if (st == TD_ST_OK) st = td_credevent_write(c, ops, "MASTER_KEY_ROTATED", "store", "", "", detail);
    return st;
}

static int start(td_rekey *rk)
{
    start_job j = {.rk = rk};
    td_st st = rk->store->run_sync(rk->store, run_start, &j);
    if (st == TD_ST_NOT_FOUND) {
        snprintf(rk->err, sizeof rk->err, "the store has no master key check: start tokend on it once first");
        return -1;
    }
    if (st != TD_ST_OK) {
        snprintf(rk->err, sizeof rk->err, "cannot read the store's master key check (store error %d)", (int)st);
        return -1;
    }
    if (j.verdict == START_DONE) {
        rk->was_done = true;
        return 1;
    }
    if (j.verdict == START_WRONG_OLD) {
        snprintf(rk->err, sizeof rk->err, "the old key is not the key this store is sealed with; nothing was changed");
        return -1;
    }
    if (j.verdict == START_OTHER_NEW) {
        snprintf(rk->err, sizeof rk->err,
                 "a rotation to another new key is under way in this store: run it again with that key");
        return -1;
    }
    /* After the marker's commit: a node that passed its start check before
     * it is connected now; one starting from now on refuses. */
    st = rk->store->run_sync(rk->store, run_serving, &j);
    if (st == TD_ST_OK) return 0;
    if (j.marked) rk->store->run_sync(rk->store, run_unmark, &j);
    if (st != TD_ST_CONFLICT)
        snprintf(rk->err, sizeof rk->err, "cannot check for serving nodes (store error %d)", (int)st);
    return -1;
}

int td_rekey_run(td_rekey *rk)
{
    if (!sodium_memcmp(rk->old_key, rk->new_key, sizeof rk->old_key)) {
        snprintf(rk->err, sizeof rk->err, "the new key is the old key");
        return -1;
    }
    int rc = start(rk);
    if (rc) return rc < 0 ? -1 : 0;
    for (int k = 0; k < TD_SEALED_KINDS; k++)
        if (reseal_kind(rk, (td_sealed_kind)k)) return -1;
    td_st st = rk->store->run_sync(rk->store, run_finish, rk);
    if (st != TD_ST_OK) {
        snprintf(rk->err, sizeof rk->err, "cannot record the new master key check (store error %d); run it again", (int)st);
        return -1;
    }
    return 0;
}
