/* test_store_cards.c — unit tests for the network tokenization verbs of the
 * store, SQLite or PostgreSQL as TD_TEST_STORE says (test_db.h): issuers'
 * card policy, cards, digital cards, their events, operations, the outbox and
 * timers. Writes go through run_sync (the writer's transaction), reads
 * through the per-thread reader; a few jobs read inside the writer too. Each
 * test gets a fresh store: its own SQLite file under $TD_TEST_TMP, or the
 * emptied PostgreSQL database at $TD_TEST_PG_URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/util.h"

#define STORE_FIXTURE_TAG "store-cards"
#include "store_fixture.h"

/* ---- write helpers: one run() per verb, called through run_sync ---- */

static td_st run_issuer(td_conn *c, void *a)
{
    return OPS->issuer_insert(c, a);
}

typedef struct {
    const char *issuer_id, *json;
} policy_arg;
static td_st run_policy_put(td_conn *c, void *a)
{
    policy_arg *p = a;
    return OPS->issuer_policy_put(c, p->issuer_id, p->json);
}

static td_st run_card(td_conn *c, void *a)
{
    return OPS->card_insert(c, a);
}
typedef struct {
    const td_card_rec *r;
    int64_t expect_seq;
} card_update_arg;
static td_st run_card_update(td_conn *c, void *a)
{
    card_update_arg *u = a;
    return OPS->card_update(c, u->r, u->expect_seq);
}

static td_st run_dcard(td_conn *c, void *a)
{
    return OPS->dcard_insert(c, a);
}
typedef struct {
    const td_dcard_rec *r;
    int64_t expect_seq;
} dcard_update_arg;
static td_st run_dcard_update(td_conn *c, void *a)
{
    dcard_update_arg *u = a;
    return OPS->dcard_update(c, u->r, u->expect_seq);
}

static td_st run_event(td_conn *c, void *a)
{
    return OPS->dcard_event_append(c, a);
}

static td_st run_op(td_conn *c, void *a)
{
    return OPS->op_insert(c, a);
}
static td_st run_op_update(td_conn *c, void *a)
{
    return OPS->op_update(c, a);
}

static td_st run_outbox(td_conn *c, void *a)
{
    return OPS->outbox_insert(c, a);
}
typedef struct {
    const char *issuer, *dcard, *messages;
    int n;
} cancel_arg;
static td_st run_outbox_cancel(td_conn *c, void *a)
{
    cancel_arg *x = a;
    return OPS->outbox_cancel(c, x->issuer, x->dcard, x->messages, &x->n);
}

static td_st run_timer(td_conn *c, void *a)
{
    return OPS->timer_insert(c, a);
}
typedef struct {
    const char *issuer;
    int64_t id;
    const char *state;
    int64_t due_ms, until_ms; /* until_ms: timer_lease's */
} timer_arg;
static td_st run_timer_finish(td_conn *c, void *a)
{
    timer_arg *t = a;
    return OPS->timer_finish(c, t->issuer, t->id, t->state);
}
static td_st run_timer_reschedule(td_conn *c, void *a)
{
    timer_arg *t = a;
    return OPS->timer_reschedule(c, t->issuer, t->id, t->due_ms);
}
static td_st run_timer_lease(td_conn *c, void *a)
{
    timer_arg *t = a;
    return OPS->timer_lease(c, t->issuer, t->id, t->due_ms, t->until_ms);
}
static td_st run_timer_cancel_dcard(td_conn *c, void *a)
{
    cancel_arg *x = a;
    return OPS->timer_cancel_dcard(c, x->issuer, x->dcard, &x->n);
}

static void put_issuer(td_store *s, const char *id)
{
    td_issuer_rec i = {.created_ms = 1};
    td_strlcpy(i.id, id, sizeof i.id);
    td_strlcpy(i.display_name, "Bank", sizeof i.display_name);
    assert_int_equal(s->run_sync(s, run_issuer, &i), TD_ST_OK);
}

/* ---- record builders ---- */

static td_card_rec make_card(const char *issuer, const char *card, const char *fp)
{
    td_card_rec r = {.state = TD_CS_ACTIVE, .seq = 1, .created_ms = 1000, .updated_ms = 1001};
    td_strlcpy(r.issuer_id, issuer, sizeof r.issuer_id);
    td_strlcpy(r.card_id, card, sizeof r.card_id);
    td_strlcpy(r.consumer_id, "consumer-7", sizeof r.consumer_id);
    td_strlcpy(r.pan_fp, fp, sizeof r.pan_fp);
    r.pan_sealed_len = 56;
    for (size_t i = 0; i < r.pan_sealed_len; i++)
        r.pan_sealed[i] = (uint8_t)(0xf0 ^ i); /* includes a 0 byte: a BLOB, not text */
    td_strlcpy(r.last4, "4242", sizeof r.last4);
    td_strlcpy(r.expiry, "1229", sizeof r.expiry);
    /* The store keeps the contact's seal as bytes; the service seals it. */
    r.contact_sealed_len = 90;
    for (size_t i = 0; i < r.contact_sealed_len; i++)
        r.contact_sealed[i] = (uint8_t)(0x0f ^ i);
    return r;
}

/* JSON members point at literals: the store only reads them on write. */
static td_dcard_rec make_dcard(const char *id, const char *issuer, const char *card, const char *corr,
                               td_dcard_state state, int64_t created)
{
    td_dcard_rec r = {.d = {.state = state, .seq = 1}, .verdict = TD_VERDICT_GREEN, .is_primary = true};
    td_strlcpy(r.id, id, sizeof r.id);
    td_strlcpy(r.issuer_id, issuer, sizeof r.issuer_id);
    td_strlcpy(r.card_id, card, sizeof r.card_id);
    td_strlcpy(r.correlation_id, corr, sizeof r.correlation_id);
    td_strlcpy(r.digitize_op_id, "op-digitize", sizeof r.digitize_op_id);
    td_strlcpy(r.wallet_provider_id, "wallet-1", sizeof r.wallet_provider_id);
    r.created_ms = r.updated_ms = created;
    return r;
}

static void check_card(const td_card_rec *got, const td_card_rec *want)
{
    assert_string_equal(got->issuer_id, want->issuer_id);
    assert_string_equal(got->card_id, want->card_id);
    assert_string_equal(got->consumer_id, want->consumer_id);
    assert_string_equal(got->pan_fp, want->pan_fp);
    assert_int_equal(got->pan_sealed_len, want->pan_sealed_len);
    assert_memory_equal(got->pan_sealed, want->pan_sealed, want->pan_sealed_len);
    assert_string_equal(got->last4, want->last4);
    assert_string_equal(got->expiry, want->expiry);
    assert_int_equal(got->contact_sealed_len, want->contact_sealed_len);
    assert_memory_equal(got->contact_sealed, want->contact_sealed, want->contact_sealed_len);
    assert_string_equal(got->phone, ""); /* never written in clear */
    assert_string_equal(got->email, "");
    assert_int_equal(got->state, want->state);
    assert_true(got->seq == want->seq);
    assert_true(got->created_ms == want->created_ms);
    assert_true(got->updated_ms == want->updated_ms);
}

/* ---- issuers' card policy ---- */

static void test_issuer_policy(void **state)
{
    fixture *f = *state;
    put_issuer(f->s, "iss1");
    char *json = NULL;
    assert_int_equal(OPS->issuer_policy_get(rd(f->s), "iss1", &json), TD_ST_OK);
    assert_string_equal(json, ""); /* defaults */
    free(json);

    policy_arg p = {"iss1", "{\"maxTokensPerCard\":3}"};
    assert_int_equal(f->s->run_sync(f->s, run_policy_put, &p), TD_ST_OK);
    json = NULL;
    assert_int_equal(OPS->issuer_policy_get(rd(f->s), "iss1", &json), TD_ST_OK);
    assert_string_equal(json, "{\"maxTokensPerCard\":3}");
    free(json);

    p.json = NULL; /* back to the defaults */
    assert_int_equal(f->s->run_sync(f->s, run_policy_put, &p), TD_ST_OK);
    json = NULL;
    assert_int_equal(OPS->issuer_policy_get(rd(f->s), "iss1", &json), TD_ST_OK);
    assert_string_equal(json, "");
    free(json);

    policy_arg none = {"nobody", "{}"};
    assert_int_equal(f->s->run_sync(f->s, run_policy_put, &none), TD_ST_NOT_FOUND);
    json = NULL;
    assert_int_equal(OPS->issuer_policy_get(rd(f->s), "nobody", &json), TD_ST_NOT_FOUND);
    assert_null(json);
}

/* ---- cards ---- */

static void test_cards(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_card_rec c1 = make_card("iss1", "card-1", "fp-1");
    assert_int_equal(s->run_sync(s, run_card, &c1), TD_ST_OK);

    td_card_rec got;
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->card_get(rd(s), "iss1", "card-1", &got), TD_ST_OK);
    check_card(&got, &c1);
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->card_by_fp(rd(s), "iss1", "fp-1", &got), TD_ST_OK);
    check_card(&got, &c1);
    assert_int_equal(OPS->card_get(rd(s), "iss2", "card-1", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->card_get(rd(s), "iss1", "card-x", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->card_by_fp(rd(s), "iss2", "fp-1", &got), TD_ST_NOT_FOUND);

    /* duplicate (issuer, card) */
    td_card_rec dup_id = make_card("iss1", "card-1", "fp-other");
    assert_int_equal(s->run_sync(s, run_card, &dup_id), TD_ST_CONFLICT);
    /* duplicate (issuer, PAN fingerprint) under another card id */
    td_card_rec dup_fp = make_card("iss1", "card-2", "fp-1");
    assert_int_equal(s->run_sync(s, run_card, &dup_fp), TD_ST_CONFLICT);
    /* the same card id and PAN at another issuer */
    td_card_rec other = make_card("iss2", "card-1", "fp-1");
    other.contact_sealed_len = 0; /* no contact: an empty seal */
    assert_int_equal(s->run_sync(s, run_card, &other), TD_ST_OK);
    assert_int_equal(OPS->card_by_fp(rd(s), "iss2", "fp-1", &got), TD_ST_OK);
    check_card(&got, &other);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM cards"), 2);

    /* seq-conditioned update: state, seq, updated_ms only */
    td_card_rec upd = c1;
    upd.state = TD_CS_SUSPENDED;
    upd.seq = 2;
    upd.updated_ms = 2000;
    upd.contact_sealed[0] ^= 0xff;
    card_update_arg u = {&upd, 5};
    assert_int_equal(s->run_sync(s, run_card_update, &u), TD_ST_CONFLICT);
    assert_int_equal(OPS->card_get(rd(s), "iss1", "card-1", &got), TD_ST_OK);
    check_card(&got, &c1);
    u.expect_seq = 1;
    assert_int_equal(s->run_sync(s, run_card_update, &u), TD_ST_OK);
    assert_int_equal(OPS->card_get(rd(s), "iss1", "card-1", &got), TD_ST_OK);
    assert_int_equal(got.state, TD_CS_SUSPENDED);
    assert_true(got.seq == 2 && got.updated_ms == 2000);
    assert_memory_equal(got.contact_sealed, c1.contact_sealed, c1.contact_sealed_len);
    /* the same update again is stale now */
    assert_int_equal(s->run_sync(s, run_card_update, &u), TD_ST_CONFLICT);
    /* a card that does not exist changes nothing */
    td_card_rec ghost = make_card("iss1", "card-ghost", "fp-ghost");
    card_update_arg ug = {&ghost, 1};
    assert_int_equal(s->run_sync(s, run_card_update, &ug), TD_ST_CONFLICT);
}

static td_st run_contact_seal(td_conn *c, void *arg)
{
    return OPS->card_contact_seal(c, arg);
}

typedef struct {
    td_card_rec rows[4];
    size_t n;
} clear_list;

static td_st run_contacts_in_clear(td_conn *c, void *arg)
{
    clear_list *l = arg;
    return OPS->card_contacts_in_clear(c, l->rows, 4, &l->n);
}

/* Rows written before contacts were sealed (phone and email in clear, as an
 * older tokend left them) are listed until sealed; sealing blanks them. */
static void test_contacts_in_clear(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_card_rec a = make_card("iss1", "card-a", "fp-a"), b = make_card("iss1", "card-b", "fp-b");
    assert_int_equal(s->run_sync(s, run_card, &a), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_card, &b), TD_ST_OK);
    clear_list l;
    assert_int_equal(s->run_sync(s, run_contacts_in_clear, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);
    db_exec(f->loc, "UPDATE cards SET phone = '+44 7700 900123', email = 'old@example.com', "
                    "contact_sealed = substr(contact_sealed, 1, 0) WHERE card_id = 'card-a'");
    assert_int_equal(s->run_sync(s, run_contacts_in_clear, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.rows[0].card_id, "card-a");
    assert_string_equal(l.rows[0].phone, "+44 7700 900123");
    assert_string_equal(l.rows[0].email, "old@example.com");
    assert_int_equal(l.rows[0].contact_sealed_len, 0);
    l.rows[0].contact_sealed_len = 3;
    memcpy(l.rows[0].contact_sealed, "\x01\x00\x02", 3);
    assert_int_equal(s->run_sync(s, run_contact_seal, &l.rows[0]), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_contacts_in_clear, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);
    td_card_rec got;
    assert_int_equal(OPS->card_get(rd(s), "iss1", "card-a", &got), TD_ST_OK);
    assert_string_equal(got.phone, "");
    assert_string_equal(got.email, "");
    assert_int_equal(got.contact_sealed_len, 3);
    assert_memory_equal(got.contact_sealed, "\x01\x00\x02", 3);
}

/* ---- digital cards ---- */

static void test_dcards_round_trip(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_dcard_rec r = make_dcard("dc-1", "iss1", "card-1", "corr-1", TD_DC_SUSPENDED, 5000);
    r.d.suspended_by = TD_PARTY_ISSUER | TD_PARTY_WALLET | TD_PARTY_CARDHOLDER;
    r.d.last_event_ms = 4900;
    r.d.seq = 7;
    r.d.stepup_open = true;
    r.d.idv_failures = 2;
    r.d.revivable_until_ms = 123456789;
    r.verdict = TD_VERDICT_YELLOW;
    td_strlcpy(r.decision_reason, "DEVICE_SCORE", sizeof r.decision_reason);
    td_strlcpy(r.token_requestor_id, "50110030273", sizeof r.token_requestor_id);
    td_strlcpy(r.token_storage_id, "storage-9", sizeof r.token_storage_id);
    r.is_primary = false;
    td_strlcpy(r.last4, "0042", sizeof r.last4);
    r.device_json = "{\"deviceName\":\"Phone \xc3\xa9\"}";
    r.idv_json = "[{\"id\":\"otp-sms\",\"type\":\"SMS\",\"value\":\"***0123\"}]";
    r.answer_json = "{\"decision\":\"YELLOW\"}";
    r.stepup_deadline_ms = 5000 + 900000;
    r.created_ms = 5000;
    r.updated_ms = 5001;
    assert_int_equal(s->run_sync(s, run_dcard, &r), TD_ST_OK);

    td_dcard_rec got;
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-1", &got), TD_ST_OK);
    assert_string_equal(got.id, "dc-1");
    assert_string_equal(got.issuer_id, "iss1");
    assert_string_equal(got.card_id, "card-1");
    assert_int_equal(got.d.state, TD_DC_SUSPENDED);
    assert_int_equal(got.d.suspended_by, TD_PARTY_ISSUER | TD_PARTY_WALLET | TD_PARTY_CARDHOLDER);
    assert_true(got.d.last_event_ms == 4900);
    assert_true(got.d.seq == 7);
    assert_true(got.d.stepup_open);
    assert_int_equal(got.d.idv_failures, 2);
    assert_true(got.d.revivable_until_ms == 123456789);
    assert_int_equal(got.verdict, TD_VERDICT_YELLOW);
    assert_string_equal(got.decision_reason, "DEVICE_SCORE");
    assert_string_equal(got.wallet_provider_id, "wallet-1");
    assert_string_equal(got.token_requestor_id, "50110030273");
    assert_string_equal(got.token_storage_id, "storage-9");
    assert_false(got.is_primary);
    assert_string_equal(got.correlation_id, "corr-1");
    assert_string_equal(got.digitize_op_id, "op-digitize");
    assert_string_equal(got.last4, "0042");
    assert_string_equal(got.device_json, r.device_json);
    assert_string_equal(got.idv_json, r.idv_json);
    assert_string_equal(got.answer_json, r.answer_json);
    assert_true(got.stepup_deadline_ms == 905000);
    assert_true(got.created_ms == 5000 && got.updated_ms == 5001);
    td_dcard_rec_free(&got);
    assert_null(got.device_json);
    td_dcard_rec_free(&got); /* freeing twice is harmless */

    /* by correlation, scoped to the issuer */
    assert_int_equal(OPS->dcard_by_correlation(rd(s), "iss1", "corr-1", &got), TD_ST_OK);
    assert_string_equal(got.id, "dc-1");
    td_dcard_rec_free(&got);
    assert_int_equal(OPS->dcard_by_correlation(rd(s), "iss2", "corr-1", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-none", &got), TD_ST_NOT_FOUND);

    /* NULL JSON is stored as the defaults; an empty suspenders set and a RED record without a card */
    td_dcard_rec red = make_dcard("dc-red", "iss1", "", "corr-red", TD_DC_DECLINED, 6000);
    red.verdict = TD_VERDICT_RED;
    assert_int_equal(s->run_sync(s, run_dcard, &red), TD_ST_OK);
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-red", &got), TD_ST_OK);
    assert_string_equal(got.device_json, "{}");
    assert_string_equal(got.idv_json, "[]");
    assert_string_equal(got.answer_json, "");
    assert_string_equal(got.card_id, "");
    assert_int_equal(got.d.suspended_by, 0);
    assert_int_equal(got.verdict, TD_VERDICT_RED);
    assert_int_equal(got.d.state, TD_DC_DECLINED);
    assert_true(got.is_primary);
    td_dcard_rec_free(&got);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM digital_cards WHERE id = 'dc-1' AND "
                                        "suspended_by = 'ISSUER,WALLET,CARDHOLDER'"),
                     1);

    /* duplicate id; duplicate (issuer, correlation); the same correlation at another issuer */
    td_dcard_rec dup = make_dcard("dc-1", "iss1", "card-1", "corr-other", TD_DC_ACTIVE, 7000);
    assert_int_equal(s->run_sync(s, run_dcard, &dup), TD_ST_CONFLICT);
    td_dcard_rec dup_corr = make_dcard("dc-2", "iss1", "card-1", "corr-1", TD_DC_ACTIVE, 7000);
    assert_int_equal(s->run_sync(s, run_dcard, &dup_corr), TD_ST_CONFLICT);
    td_dcard_rec other = make_dcard("dc-3", "iss2", "card-1", "corr-1", TD_DC_ACTIVE, 7000);
    assert_int_equal(s->run_sync(s, run_dcard, &other), TD_ST_OK);
    assert_int_equal(OPS->dcard_by_correlation(rd(s), "iss2", "corr-1", &got), TD_ST_OK);
    assert_string_equal(got.id, "dc-3");
    td_dcard_rec_free(&got);
}

static void test_dcard_update(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_dcard_rec r = make_dcard("dc-u", "iss1", "card-1", "corr-u", TD_DC_PENDING_IDV, 100);
    r.d.stepup_open = true;
    r.answer_json = "{\"first\":true}";
    r.device_json = "{\"d\":1}";
    r.stepup_deadline_ms = 900;
    assert_int_equal(s->run_sync(s, run_dcard, &r), TD_ST_OK);

    td_dcard_rec upd = r;
    upd.d.state = TD_DC_SUSPENDED;
    upd.d.suspended_by = TD_PARTY_TSP | TD_PARTY_MOBILE_PIN_LOCKED;
    upd.d.last_event_ms = 150;
    upd.d.seq = 2;
    upd.d.stepup_open = false;
    upd.d.idv_failures = 3;
    upd.d.revivable_until_ms = 777;
    upd.stepup_deadline_ms = 0;
    upd.updated_ms = 200;
    /* not mutable through dcard_update */
    upd.answer_json = "{\"second\":true}";
    upd.device_json = NULL;
    upd.verdict = TD_VERDICT_RED;
    td_strlcpy(upd.wallet_provider_id, "other-wallet", sizeof upd.wallet_provider_id);

    dcard_update_arg u = {&upd, 9}; /* stale */
    assert_int_equal(s->run_sync(s, run_dcard_update, &u), TD_ST_CONFLICT);
    td_dcard_rec got;
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-u", &got), TD_ST_OK);
    assert_int_equal(got.d.state, TD_DC_PENDING_IDV);
    assert_true(got.d.seq == 1);
    td_dcard_rec_free(&got);

    u.expect_seq = 1;
    assert_int_equal(s->run_sync(s, run_dcard_update, &u), TD_ST_OK);
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-u", &got), TD_ST_OK);
    assert_int_equal(got.d.state, TD_DC_SUSPENDED);
    assert_int_equal(got.d.suspended_by, TD_PARTY_TSP | TD_PARTY_MOBILE_PIN_LOCKED);
    assert_true(got.d.last_event_ms == 150);
    assert_true(got.d.seq == 2);
    assert_false(got.d.stepup_open);
    assert_int_equal(got.d.idv_failures, 3);
    assert_true(got.d.revivable_until_ms == 777);
    assert_true(got.stepup_deadline_ms == 0);
    assert_true(got.updated_ms == 200 && got.created_ms == 100);
    assert_string_equal(got.answer_json, "{\"first\":true}");
    assert_string_equal(got.device_json, "{\"d\":1}");
    assert_int_equal(got.verdict, TD_VERDICT_GREEN);
    assert_string_equal(got.wallet_provider_id, "wallet-1");
    td_dcard_rec_free(&got);

    /* the same update again: its expected seq is gone */
    assert_int_equal(s->run_sync(s, run_dcard_update, &u), TD_ST_CONFLICT);
    /* an unknown id changes nothing */
    td_dcard_rec ghost = make_dcard("dc-ghost", "iss1", "card-1", "corr-g", TD_DC_ACTIVE, 1);
    dcard_update_arg ug = {&ghost, 1};
    assert_int_equal(s->run_sync(s, run_dcard_update, &ug), TD_ST_CONFLICT);
}

typedef struct {
    char ids[16][65];
    int n;
    td_conn *reenter; /* if set: fn calls the store on this connection */
    int reentered_ok;
} dcard_ids;
static void collect_dcard(const td_dcard_rec *r, void *arg)
{
    dcard_ids *l = arg;
    if (l->n < 16) td_strlcpy(l->ids[l->n++], r->id, sizeof l->ids[0]);
    assert_non_null(r->device_json);
    assert_non_null(r->idv_json);
    assert_non_null(r->answer_json);
    if (l->reenter) {
        /* a verb on the same connection, even the same list, from inside fn */
        td_dcard_rec again;
        if (OPS->dcard_get(l->reenter, r->issuer_id, r->id, &again) == TD_ST_OK) {
            if (strcmp(again.id, r->id) == 0) l->reentered_ok++;
            td_dcard_rec_free(&again);
        }
        dcard_ids inner = {.n = 0};
        if (OPS->dcard_list_by_card(l->reenter, r->issuer_id, r->card_id, collect_dcard, &inner) == TD_ST_OK &&
            inner.n > 0)
            l->reentered_ok++;
    }
}

static void test_dcard_lists(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    /* inserted out of time order; dc-b and dc-c share a time (insertion order breaks the tie) */
    td_dcard_rec recs[] = {
        make_dcard("dc-d", "iss1", "card-1", "c-d", TD_DC_ACTIVE, 400),
        make_dcard("dc-a", "iss1", "card-1", "c-a", TD_DC_DELETED, 100),
        make_dcard("dc-b", "iss1", "card-2", "c-b", TD_DC_ACTIVE, 200),
        make_dcard("dc-c", "iss1", "card-1", "c-c", TD_DC_PENDING_IDV, 200),
        make_dcard("dc-x", "iss2", "card-1", "c-x", TD_DC_ACTIVE, 150),
    };
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        assert_int_equal(s->run_sync(s, run_dcard, &recs[i]), TD_ST_OK);

    dcard_ids l = {.n = 0};
    assert_int_equal(OPS->dcard_list_by_card(rd(s), "iss1", "card-1", collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.ids[0], "dc-a");
    assert_string_equal(l.ids[1], "dc-c");
    assert_string_equal(l.ids[2], "dc-d");
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_card(rd(s), "iss2", "card-9", collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);

    /* by issuer: all, oldest first */
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 0, 0, 0, 100, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.ids[0], "dc-a");
    assert_string_equal(l.ids[1], "dc-b");
    assert_string_equal(l.ids[2], "dc-c");
    assert_string_equal(l.ids[3], "dc-d");
    /* [200, 400) */
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 200, 400, 0, 100, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "dc-b");
    assert_string_equal(l.ids[1], "dc-c");
    /* start only, end only */
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 201, 0, 0, 100, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], "dc-d");
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 0, 200, 0, 100, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], "dc-a");
    /* pages */
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 0, 0, 1, 2, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "dc-b");
    assert_string_equal(l.ids[1], "dc-c");
    l.n = 0;
    assert_int_equal(OPS->dcard_list_by_issuer(rd(s), "iss1", 0, 0, 4, 2, collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);

    /* fn may call back into the store on the same connection */
    l = (dcard_ids){.reenter = rd(s)};
    assert_int_equal(OPS->dcard_list_by_card(rd(s), "iss1", "card-1", collect_dcard, &l), TD_ST_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.reentered_ok, 6);
}

static void test_dcard_counts(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    static const td_dcard_state states[] = {TD_DC_PENDING_IDV, TD_DC_ACTIVE,   TD_DC_SUSPENDED,
                                            TD_DC_DELETED,     TD_DC_DECLINED, TD_DC_EXPIRED};
    for (size_t i = 0; i < 6; i++) {
        char id[32], corr[32];
        snprintf(id, sizeof id, "dc-%zu", i);
        snprintf(corr, sizeof corr, "corr-%zu", i);
        td_dcard_rec r = make_dcard(id, "iss1", "card-1", corr, states[i], 1000 + (int64_t)i * 100);
        assert_int_equal(s->run_sync(s, run_dcard, &r), TD_ST_OK);
    }
    /* other cards and issuers do not count */
    td_dcard_rec o1 = make_dcard("dc-o1", "iss1", "card-2", "corr-o1", TD_DC_ACTIVE, 5000);
    td_dcard_rec o2 = make_dcard("dc-o2", "iss2", "card-1", "corr-o2", TD_DC_ACTIVE, 5000);
    assert_int_equal(s->run_sync(s, run_dcard, &o1), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_dcard, &o2), TD_ST_OK);

    int live = -1, attempts = -1;
    assert_int_equal(OPS->dcard_counts(rd(s), "iss1", "card-1", 0, &live, &attempts), TD_ST_OK);
    assert_int_equal(live, 3); /* PENDING_IDV, ACTIVE, SUSPENDED */
    assert_int_equal(attempts, 6);
    /* since 1300: dc-3 (DELETED), dc-4 (DECLINED), dc-5 (EXPIRED): created_ms >= since, any state */
    assert_int_equal(OPS->dcard_counts(rd(s), "iss1", "card-1", 1300, &live, &attempts), TD_ST_OK);
    assert_int_equal(live, 3);
    assert_int_equal(attempts, 3);
    assert_int_equal(OPS->dcard_counts(rd(s), "iss1", "card-1", 1501, &live, &attempts), TD_ST_OK);
    assert_int_equal(live, 3);
    assert_int_equal(attempts, 0);
    /* an unknown card: zeros, not NOT_FOUND */
    live = attempts = -1;
    assert_int_equal(OPS->dcard_counts(rd(s), "iss1", "card-none", 0, &live, &attempts), TD_ST_OK);
    assert_int_equal(live, 0);
    assert_int_equal(attempts, 0);
}

/* ---- digital cards' events ---- */

static td_dcard_event_rec make_event(const char *dcard, int64_t seq, const char *issuer, const char *source,
                                     const char *event_id)
{
    td_dcard_event_rec e = {.seq = seq, .event_ms = 10 * seq, .time_ms = 11 * seq};
    td_strlcpy(e.digital_card_id, dcard, sizeof e.digital_card_id);
    td_strlcpy(e.issuer_id, issuer, sizeof e.issuer_id);
    td_strlcpy(e.source, source, sizeof e.source);
    td_strlcpy(e.event_id, event_id, sizeof e.event_id);
    td_strlcpy(e.type, "SUSPEND", sizeof e.type);
    td_strlcpy(e.outcome, "APPLIED", sizeof e.outcome);
    return e;
}

static void test_dcard_events(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_dcard_event_rec e1 = make_event("dc-1", 2, "iss1", "TSP", "ev-1");
    td_strlcpy(e1.why, "STALE", sizeof e1.why);
    e1.detail_json = "{\"reason\":\"lost\"}";
    e1.answer_json = "{\"status\":\"OK\"}";
    assert_int_equal(s->run_sync(s, run_event, &e1), TD_ST_OK);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM dcard_events WHERE digital_card_id = 'dc-1' AND "
                                        "seq = 2 AND issuer_id = 'iss1' AND event_id = 'ev-1' AND source = 'TSP' "
                                        "AND type = 'SUSPEND' AND outcome = 'APPLIED' AND why = 'STALE' AND "
                                        "event_ms = 20 AND time_ms = 22 AND detail_json = '{\"reason\":\"lost\"}' "
                                        "AND answer_json = '{\"status\":\"OK\"}'"),
                     1);

    char *answer = NULL;
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "TSP", "ev-1", &answer), TD_ST_OK);
    assert_string_equal(answer, "{\"status\":\"OK\"}");
    free(answer);
    answer = NULL;
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "WALLET", "ev-1", &answer), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss2", "TSP", "ev-1", &answer), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "TSP", "ev-2", &answer), TD_ST_NOT_FOUND);
    assert_null(answer);

    /* the same (issuer, source, event id) again, even for another card: CONFLICT */
    td_dcard_event_rec dup = make_event("dc-1", 3, "iss1", "TSP", "ev-1");
    assert_int_equal(s->run_sync(s, run_event, &dup), TD_ST_CONFLICT);
    td_dcard_event_rec dup2 = make_event("dc-2", 1, "iss1", "TSP", "ev-1");
    assert_int_equal(s->run_sync(s, run_event, &dup2), TD_ST_CONFLICT);
    /* another source, another issuer: fine */
    td_dcard_event_rec w = make_event("dc-1", 3, "iss1", "WALLET", "ev-1");
    assert_int_equal(s->run_sync(s, run_event, &w), TD_ST_OK);
    td_dcard_event_rec i2 = make_event("dc-9", 1, "iss2", "TSP", "ev-1");
    assert_int_equal(s->run_sync(s, run_event, &i2), TD_ST_OK);
    /* NULL answer and detail are stored as "" and "{}" */
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "WALLET", "ev-1", &answer), TD_ST_OK);
    assert_string_equal(answer, "");
    free(answer);
    answer = NULL;
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM dcard_events WHERE source = 'WALLET' AND "
                                        "detail_json = '{}' AND answer_json = ''"),
                     1);

    /* empty event ids (commands, timers) never conflict, and are never looked up */
    td_dcard_event_rec c1 = make_event("dc-1", 4, "iss1", "ISSUER", "");
    td_dcard_event_rec c2 = make_event("dc-1", 5, "iss1", "ISSUER", "");
    c1.answer_json = c2.answer_json = "{\"x\":1}";
    assert_int_equal(s->run_sync(s, run_event, &c1), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_event, &c2), TD_ST_OK);
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "ISSUER", "", &answer), TD_ST_NOT_FOUND);
    assert_null(answer);

    /* the card's sequence number is unique too */
    td_dcard_event_rec same_seq = make_event("dc-1", 5, "iss1", "ISSUER", "");
    assert_int_equal(s->run_sync(s, run_event, &same_seq), TD_ST_CONFLICT);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM dcard_events"), 5);
}

/* ---- operations ---- */

static void check_op(const td_operation_rec *got, const td_operation_rec *want)
{
    assert_string_equal(got->id, want->id);
    assert_string_equal(got->issuer_id, want->issuer_id);
    assert_string_equal(got->digital_card_id, want->digital_card_id);
    assert_string_equal(got->card_id, want->card_id);
    assert_string_equal(got->operation, want->operation);
    assert_string_equal(got->status, want->status);
    assert_string_equal(got->requestor_type, want->requestor_type);
    assert_string_equal(got->reason, want->reason);
    assert_string_equal(got->reason_code, want->reason_code);
    assert_string_equal(got->error_code, want->error_code);
    assert_string_equal(got->correlation_id, want->correlation_id);
    assert_true(got->start_ms == want->start_ms);
    assert_true(got->end_ms == want->end_ms);
}

static void test_operations(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_operation_rec o = {.start_ms = 100, .end_ms = 0};
    td_strlcpy(o.id, "op-1", sizeof o.id);
    td_strlcpy(o.issuer_id, "iss1", sizeof o.issuer_id);
    td_strlcpy(o.digital_card_id, "dc-1", sizeof o.digital_card_id);
    td_strlcpy(o.card_id, "card-1", sizeof o.card_id);
    td_strlcpy(o.operation, "DIGITIZE", sizeof o.operation);
    td_strlcpy(o.status, "PENDING", sizeof o.status);
    td_strlcpy(o.requestor_type, "TSP", sizeof o.requestor_type);
    td_strlcpy(o.reason, "enrolment", sizeof o.reason);
    td_strlcpy(o.reason_code, "RC1", sizeof o.reason_code);
    td_strlcpy(o.correlation_id, "corr-1", sizeof o.correlation_id);
    assert_int_equal(s->run_sync(s, run_op, &o), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_op, &o), TD_ST_CONFLICT);

    td_operation_rec got;
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->op_get(rd(s), "iss1", "op-1", &got), TD_ST_OK);
    check_op(&got, &o);
    assert_int_equal(OPS->op_get(rd(s), "iss2", "op-1", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->op_get(rd(s), "iss1", "op-2", &got), TD_ST_NOT_FOUND);

    /* update: status, error_code, end_ms only */
    td_operation_rec upd = o;
    td_strlcpy(upd.status, "FAILED", sizeof upd.status);
    td_strlcpy(upd.error_code, "STEP_UP_EXPIRED", sizeof upd.error_code);
    upd.end_ms = 900;
    td_strlcpy(upd.reason, "changed", sizeof upd.reason);
    assert_int_equal(s->run_sync(s, run_op_update, &upd), TD_ST_OK);
    assert_int_equal(OPS->op_get(rd(s), "iss1", "op-1", &got), TD_ST_OK);
    td_operation_rec want = o;
    td_strlcpy(want.status, "FAILED", sizeof want.status);
    td_strlcpy(want.error_code, "STEP_UP_EXPIRED", sizeof want.error_code);
    want.end_ms = 900;
    check_op(&got, &want);

    /* another issuer's update, or an unknown id: NOT_FOUND */
    td_strlcpy(upd.issuer_id, "iss2", sizeof upd.issuer_id);
    assert_int_equal(s->run_sync(s, run_op_update, &upd), TD_ST_NOT_FOUND);
    td_strlcpy(upd.issuer_id, "iss1", sizeof upd.issuer_id);
    td_strlcpy(upd.id, "op-none", sizeof upd.id);
    assert_int_equal(s->run_sync(s, run_op_update, &upd), TD_ST_NOT_FOUND);
}

/* ---- the outbox ---- */

static td_outbox_rec make_outbox(const char *issuer, const char *channel, const char *dcard, const char *message,
                                 int64_t created)
{
    td_outbox_rec o = {.created_ms = created, .due_ms = created + 5, .event_ms = created - 1, .dcard_seq = 3};
    td_strlcpy(o.issuer_id, issuer, sizeof o.issuer_id);
    td_strlcpy(o.channel, channel, sizeof o.channel);
    td_strlcpy(o.digital_card_id, dcard, sizeof o.digital_card_id);
    td_strlcpy(o.message, message, sizeof o.message);
    td_strlcpy(o.state, "PENDING", sizeof o.state);
    return o;
}

typedef struct {
    td_outbox_rec rows[16];
    int n;
} outbox_rows;
static void collect_outbox(const td_outbox_rec *o, void *arg)
{
    outbox_rows *l = arg;
    if (l->n < 16) l->rows[l->n++] = *o;
}

static void test_outbox(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    /* a notification with every field */
    td_outbox_rec n1 = make_outbox("iss1", "ISSUER", "dc-1", "", 100);
    td_strlcpy(n1.card_id, "card-1", sizeof n1.card_id);
    td_strlcpy(n1.operation_id, "op-1", sizeof n1.operation_id);
    td_strlcpy(n1.operation, "DIGITIZE", sizeof n1.operation);
    td_strlcpy(n1.status, "SUCCESSFUL", sizeof n1.status);
    td_strlcpy(n1.error_code, "E1", sizeof n1.error_code);
    td_strlcpy(n1.source, "TSP", sizeof n1.source);
    td_strlcpy(n1.correlation_id, "corr-1", sizeof n1.correlation_id);
    td_strlcpy(n1.wallet_provider_id, "wallet-1", sizeof n1.wallet_provider_id);
    n1.state[0] = '\0'; /* a new row is PENDING */
    assert_int_equal(s->run_sync(s, run_outbox, &n1), TD_ST_OK);
    assert_true(n1.id > 0);

    /* end-user messages; OTP with a sealed secret */
    td_outbox_rec m[] = {
        make_outbox("iss1", "USER", "dc-1", "OTP", 200),        make_outbox("iss1", "USER", "dc-1", "REMINDER", 300),
        make_outbox("iss1", "USER", "dc-1", "ACTIVATION", 400), make_outbox("iss1", "ISSUER", "dc-1", "OTP", 450),
        make_outbox("iss1", "USER", "dc-2", "OTP", 500),        make_outbox("iss1", "USER", "dc-1", "OTP", 600),
        make_outbox("iss2", "USER", "dc-9", "OTP", 650),
    };
    td_strlcpy(m[0].method_id, "otp-sms", sizeof m[0].method_id);
    m[0].secret_len = 72;
    for (size_t i = 0; i < m[0].secret_len; i++)
        m[0].secret_sealed[i] = (uint8_t)(i * 7);
    int64_t prev = n1.id;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        assert_int_equal(s->run_sync(s, run_outbox, &m[i]), TD_ST_OK);
        assert_true(m[i].id > prev); /* ids increase */
        prev = m[i].id;
    }

    /* list: all of the issuer's rows in id order, with every field */
    outbox_rows l = {.n = 0};
    assert_int_equal(OPS->outbox_list(rd(s), "iss1", NULL, 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 7);
    const td_outbox_rec *g = &l.rows[0];
    assert_true(g->id == n1.id);
    assert_string_equal(g->issuer_id, "iss1");
    assert_string_equal(g->channel, "ISSUER");
    assert_string_equal(g->digital_card_id, "dc-1");
    assert_string_equal(g->card_id, "card-1");
    assert_true(g->dcard_seq == 3);
    assert_string_equal(g->operation_id, "op-1");
    assert_string_equal(g->operation, "DIGITIZE");
    assert_string_equal(g->status, "SUCCESSFUL");
    assert_string_equal(g->error_code, "E1");
    assert_string_equal(g->source, "TSP");
    assert_string_equal(g->correlation_id, "corr-1");
    assert_string_equal(g->wallet_provider_id, "wallet-1");
    assert_string_equal(g->message, "");
    assert_int_equal(g->secret_len, 0);
    assert_true(g->event_ms == 99 && g->created_ms == 100 && g->due_ms == 105);
    assert_string_equal(g->state, "PENDING");
    g = &l.rows[1];
    assert_true(g->id == m[0].id);
    assert_string_equal(g->message, "OTP");
    assert_string_equal(g->method_id, "otp-sms");
    assert_int_equal(g->secret_len, 72);
    assert_memory_equal(g->secret_sealed, m[0].secret_sealed, 72);
    for (int i = 1; i < l.n; i++)
        assert_true(l.rows[i].id > l.rows[i - 1].id);
    /* after_id and limit */
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(s), "iss1", NULL, m[1].id, 2, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 2);
    assert_true(l.rows[0].id == m[2].id && l.rows[1].id == m[3].id);

    /* otp times: the card's USER OTP rows, created at or after since, at most cap */
    int64_t times[8];
    size_t n = 99;
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 0, times, 8, &n), TD_ST_OK);
    assert_int_equal(n, 2);
    assert_true(times[0] == 200 && times[1] == 600);
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 201, times, 8, &n), TD_ST_OK);
    assert_int_equal(n, 1);
    assert_true(times[0] == 600);
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 0, times, 1, &n), TD_ST_OK);
    assert_int_equal(n, 1);
    assert_true(times[0] == 200);
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 0, NULL, 0, &n), TD_ST_OK);
    assert_int_equal(n, 0);
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-none", 0, times, 8, &n), TD_ST_OK);
    assert_int_equal(n, 0);

    /* cancel: only dc-1's PENDING USER rows of the named messages */
    cancel_arg ca = {"iss1", "dc-1", "OTP,REMINDER", -1};
    assert_int_equal(s->run_sync(s, run_outbox_cancel, &ca), TD_ST_OK);
    assert_int_equal(ca.n, 3); /* m[0], m[1], m[5]; not the ISSUER row, not ACTIVATION, not dc-2 */
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(s), "iss1", "CANCELLED", 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 3);
    assert_true(l.rows[0].id == m[0].id && l.rows[1].id == m[1].id && l.rows[2].id == m[5].id);
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(s), "iss1", "PENDING", 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 4);
    assert_true(l.rows[0].id == n1.id && l.rows[1].id == m[2].id && l.rows[2].id == m[3].id && l.rows[3].id == m[4].id);
    /* cancelled rows still count as OTP deliveries (any state) */
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 0, times, 8, &n), TD_ST_OK);
    assert_int_equal(n, 2);
    /* again: nothing left to cancel */
    ca.n = -1;
    assert_int_equal(s->run_sync(s, run_outbox_cancel, &ca), TD_ST_OK);
    assert_int_equal(ca.n, 0);
    /* a name is matched whole: "ACTIV" is not ACTIVATION, and no message is "" */
    cancel_arg partial = {"iss1", "dc-1", "ACTIV,,OTP", -1};
    assert_int_equal(s->run_sync(s, run_outbox_cancel, &partial), TD_ST_OK);
    assert_int_equal(partial.n, 0);
    cancel_arg one = {"iss1", "dc-1", "ACTIVATION", -1};
    assert_int_equal(s->run_sync(s, run_outbox_cancel, &one), TD_ST_OK);
    assert_int_equal(one.n, 1);
    /* the other issuer's rows */
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(s), "iss2", NULL, 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_true(l.rows[0].id == m[6].id);
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(s), "iss3", NULL, 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);
}

/* ---- timers ---- */

static td_timer_rec make_timer(const char *dcard, const char *kind, int n, int64_t due)
{
    td_timer_rec t = {.n = n, .due_ms = due};
    td_strlcpy(t.issuer_id, "iss1", sizeof t.issuer_id);
    td_strlcpy(t.digital_card_id, dcard, sizeof t.digital_card_id);
    td_strlcpy(t.kind, kind, sizeof t.kind);
    return t;
}

typedef struct {
    td_timer_rec rows[16];
    int n;
    td_conn *finish_on; /* if set: fn fires each timer on this connection (inside a job) */
    int finished;
    int64_t now;
} timer_rows;
static void collect_timer(const td_timer_rec *t, void *arg)
{
    timer_rows *l = arg;
    if (l->n < 16) l->rows[l->n++] = *t;
    if (l->finish_on && OPS->timer_finish(l->finish_on, t->issuer_id, t->id, "FIRED") == TD_ST_OK) l->finished++;
}

static td_st run_fire_due(td_conn *c, void *a)
{
    timer_rows *l = a;
    l->finish_on = c;
    return OPS->timer_due(c, l->now, 10, collect_timer, l);
}

static void test_timers(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    int64_t due = 0;
    assert_int_equal(OPS->timer_next_due(rd(s), &due), TD_ST_NOT_FOUND);

    td_timer_rec t[] = {
        make_timer("dc-1", "REMINDER", 2, 3000),      make_timer("dc-1", "REMINDER", 1, 1000),
        make_timer("dc-1", "STEPUP_EXPIRE", 0, 5000), make_timer("dc-2", "REMINDER", 1, 2000),
        make_timer("dc-2", "STEPUP_EXPIRE", 0, 2000),
    };
    int64_t prev = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(s->run_sync(s, run_timer, &t[i]), TD_ST_OK);
        assert_true(t[i].id > prev);
        prev = t[i].id;
    }
    td_timer_rec got;
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[0].id, &got), TD_ST_OK);
    assert_true(got.id == t[0].id);
    assert_string_equal(got.issuer_id, "iss1");
    assert_string_equal(got.digital_card_id, "dc-1");
    assert_string_equal(got.kind, "REMINDER");
    assert_int_equal(got.n, 2);
    assert_true(got.due_ms == 3000);
    assert_string_equal(got.state, "PENDING");
    assert_int_equal(OPS->timer_get(rd(s), "iss1", 999999, &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->timer_next_due(rd(s), &due), TD_ST_OK);
    assert_true(due == 1000);

    /* due: earliest first (ties in id order), at or before now, at most limit */
    timer_rows l = {.n = 0};
    assert_int_equal(OPS->timer_due(rd(s), 2999, 10, collect_timer, &l), TD_ST_OK);
    assert_int_equal(l.n, 3);
    assert_true(l.rows[0].id == t[1].id && l.rows[1].id == t[3].id && l.rows[2].id == t[4].id);
    l.n = 0;
    assert_int_equal(OPS->timer_due(rd(s), 3000, 2, collect_timer, &l), TD_ST_OK);
    assert_int_equal(l.n, 2);
    assert_true(l.rows[0].id == t[1].id && l.rows[1].id == t[3].id);
    l.n = 0;
    assert_int_equal(OPS->timer_due(rd(s), 999, 10, collect_timer, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);

    /* finish once; the second finish is a CONFLICT; unknown ids NOT_FOUND; a bad state is a bug */
    timer_arg fa = {.issuer = "iss1", .id = t[1].id, .state = "FIRED"};
    assert_int_equal(s->run_sync(s, run_timer_finish, &fa), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_timer_finish, &fa), TD_ST_CONFLICT);
    fa.state = "CANCELLED";
    assert_int_equal(s->run_sync(s, run_timer_finish, &fa), TD_ST_CONFLICT);
    timer_arg none = {.issuer = "iss1", .id = 999999, .state = "FIRED"};
    assert_int_equal(s->run_sync(s, run_timer_finish, &none), TD_ST_NOT_FOUND);
    timer_arg bad = {.issuer = "iss1", .id = t[0].id, .state = "PENDING"};
    assert_int_equal(s->run_sync(s, run_timer_finish, &bad), TD_ST_INTERNAL);
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[1].id, &got), TD_ST_OK);
    assert_string_equal(got.state, "FIRED");
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[0].id, &got), TD_ST_OK);
    assert_string_equal(got.state, "PENDING");
    assert_int_equal(OPS->timer_next_due(rd(s), &due), TD_ST_OK);
    assert_true(due == 2000);

    /* reschedule a PENDING timer; a finished one is a CONFLICT */
    timer_arg ra = {.issuer = "iss1", .id = t[3].id, .due_ms = 6000};
    assert_int_equal(s->run_sync(s, run_timer_reschedule, &ra), TD_ST_OK);
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[3].id, &got), TD_ST_OK);
    assert_true(got.due_ms == 6000);
    ra.id = t[1].id;
    assert_int_equal(s->run_sync(s, run_timer_reschedule, &ra), TD_ST_CONFLICT);
    ra.id = 999999;
    assert_int_equal(s->run_sync(s, run_timer_reschedule, &ra), TD_ST_NOT_FOUND);
    l.n = 0;
    assert_int_equal(OPS->timer_due(rd(s), 10000, 10, collect_timer, &l), TD_ST_OK);
    assert_int_equal(l.n, 4);
    assert_true(l.rows[0].id == t[4].id && l.rows[1].id == t[0].id && l.rows[2].id == t[2].id &&
                l.rows[3].id == t[3].id);

    /* cancel a card's PENDING timers (the FIRED one stays FIRED) */
    cancel_arg cd = {.issuer = "iss1", .dcard = "dc-1", .n = -1};
    assert_int_equal(s->run_sync(s, run_timer_cancel_dcard, &cd), TD_ST_OK);
    assert_int_equal(cd.n, 2);
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[1].id, &got), TD_ST_OK);
    assert_string_equal(got.state, "FIRED");
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t[2].id, &got), TD_ST_OK);
    assert_string_equal(got.state, "CANCELLED");
    assert_int_equal(s->run_sync(s, run_timer_cancel_dcard, &cd), TD_ST_OK);
    assert_int_equal(cd.n, 0);
    assert_int_equal(OPS->timer_next_due(rd(s), &due), TD_ST_OK);
    assert_true(due == 2000);

    /* inside a job, fn fires each due timer while timer_due lists them */
    timer_rows fire = {.now = 10000};
    assert_int_equal(s->run_sync(s, run_fire_due, &fire), TD_ST_OK);
    assert_int_equal(fire.n, 2);
    assert_int_equal(fire.finished, 2);
    assert_true(fire.rows[0].id == t[4].id && fire.rows[1].id == t[3].id);
    assert_int_equal(OPS->timer_next_due(rd(s), &due), TD_ST_NOT_FOUND);
    l.n = 0;
    assert_int_equal(OPS->timer_due(rd(s), 10000, 10, collect_timer, &l), TD_ST_OK);
    assert_int_equal(l.n, 0);
}

/* ---- tenancy: rows are found by issuer and id together ---- */

typedef struct {
    const char *issuer;
    int64_t id;
} attempt_arg;
static td_st run_outbox_delivered(td_conn *c, void *a)
{
    attempt_arg *x = a;
    return OPS->outbox_attempt(c, x->issuer, x->id, 0, "DELIVERED", 200, NULL, 5000, 0); /* never claimed: lease 0 */
}

/* Every verb that takes an id takes its issuer too: given another issuer, it
 * finds nothing and changes nothing, as if the id did not exist (the rule the
 * services rely on for "another issuer's card is NOT_FOUND"). */
static void test_other_issuer_finds_nothing(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_dcard_rec dc = make_dcard("dc-1", "iss1", "card-1", "corr-1", TD_DC_PENDING_IDV, 100);
    assert_int_equal(s->run_sync(s, run_dcard, &dc), TD_ST_OK);
    td_outbox_rec otp = make_outbox("iss1", "USER", "dc-1", "OTP", 200);
    assert_int_equal(s->run_sync(s, run_outbox, &otp), TD_ST_OK);
    td_timer_rec t = make_timer("dc-1", "STEPUP_EXPIRE", 0, 3000);
    assert_int_equal(s->run_sync(s, run_timer, &t), TD_ST_OK);

    td_dcard_rec got;
    assert_int_equal(OPS->dcard_get(rd(s), "iss2", "dc-1", &got), TD_ST_NOT_FOUND);
    td_dcard_rec moved = dc;
    td_strlcpy(moved.issuer_id, "iss2", sizeof moved.issuer_id);
    moved.d.state = TD_DC_ACTIVE;
    moved.d.seq = 2;
    dcard_update_arg u = {&moved, 1};
    assert_int_equal(s->run_sync(s, run_dcard_update, &u), TD_ST_CONFLICT);
    int64_t times[4];
    size_t n = 9;
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss2", "dc-1", 0, times, 4, &n), TD_ST_OK);
    assert_int_equal(n, 0);
    cancel_arg ca = {"iss2", "dc-1", "OTP", -1};
    assert_int_equal(s->run_sync(s, run_outbox_cancel, &ca), TD_ST_OK);
    assert_int_equal(ca.n, 0);
    attempt_arg aa = {"iss2", otp.id};
    assert_int_equal(s->run_sync(s, run_outbox_delivered, &aa), TD_ST_NOT_FOUND);
    td_timer_rec gt;
    assert_int_equal(OPS->timer_get(rd(s), "iss2", t.id, &gt), TD_ST_NOT_FOUND);
    timer_arg ta = {.issuer = "iss2", .id = t.id, .state = "FIRED", .due_ms = 3000, .until_ms = 8000};
    assert_int_equal(s->run_sync(s, run_timer_finish, &ta), TD_ST_NOT_FOUND);
    assert_int_equal(s->run_sync(s, run_timer_reschedule, &ta), TD_ST_NOT_FOUND);
    assert_int_equal(s->run_sync(s, run_timer_lease, &ta), TD_ST_NOT_FOUND);
    cancel_arg cd = {.issuer = "iss2", .dcard = "dc-1", .n = -1};
    assert_int_equal(s->run_sync(s, run_timer_cancel_dcard, &cd), TD_ST_OK);
    assert_int_equal(cd.n, 0);

    /* nothing moved: the owner still finds every row as it was */
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-1", &got), TD_ST_OK);
    assert_int_equal(got.d.state, TD_DC_PENDING_IDV);
    assert_true(got.d.seq == 1);
    td_dcard_rec_free(&got);
    assert_int_equal(OPS->outbox_otp_times(rd(s), "iss1", "dc-1", 0, times, 4, &n), TD_ST_OK);
    assert_int_equal(n, 1);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM outbox WHERE state = 'PENDING' AND attempts = 0"), 1);
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t.id, &gt), TD_ST_OK);
    assert_string_equal(gt.state, "PENDING");
    assert_true(gt.due_ms == 3000);

    /* and the owner's verbs work */
    ta.issuer = "iss1";
    assert_int_equal(s->run_sync(s, run_timer_lease, &ta), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_timer_lease, &ta), TD_ST_CONFLICT); /* taken: due at 8000 now */
    assert_int_equal(OPS->timer_get(rd(s), "iss1", t.id, &gt), TD_ST_OK);
    assert_true(gt.due_ms == 8000);
    aa.issuer = "iss1";
    assert_int_equal(s->run_sync(s, run_outbox_delivered, &aa), TD_ST_OK);
    u.r = &dc;
    dc.d.state = TD_DC_ACTIVE;
    dc.d.seq = 2;
    assert_int_equal(s->run_sync(s, run_dcard_update, &u), TD_ST_OK);
}

/* ---- the writer's transaction ---- */

/* A job that reads and writes in one transaction, as a use case does: read
 * the card, decide, update under the seq, append the event, owe an outbox row
 * and a timer; a failing step rolls the whole job back. */
typedef struct {
    const char *dcard;
    bool fail_at_end;
    td_st seen_counts, seen_answer;
    int live;
} use_case_arg;
static td_st run_use_case(td_conn *c, void *a)
{
    use_case_arg *u = a;
    td_dcard_rec r;
    td_st st = OPS->dcard_get(c, "iss1", u->dcard, &r);
    if (st != TD_ST_OK) return st;
    int attempts;
    u->seen_counts = OPS->dcard_counts(c, r.issuer_id, r.card_id, 0, &u->live, &attempts);
    int64_t seq = r.d.seq;
    r.d.state = TD_DC_SUSPENDED;
    r.d.suspended_by = TD_PARTY_ISSUER;
    r.d.seq = seq + 1;
    st = OPS->dcard_update(c, &r, seq);
    if (st == TD_ST_OK) {
        td_dcard_event_rec e = make_event(r.id, r.d.seq, r.issuer_id, "ISSUER", "job-ev");
        e.answer_json = "{\"job\":1}";
        st = OPS->dcard_event_append(c, &e);
    }
    if (st == TD_ST_OK) {
        char *answer = NULL;
        u->seen_answer = OPS->dcard_event_answer(c, r.issuer_id, "ISSUER", "job-ev", &answer);
        free(answer);
        td_outbox_rec o = make_outbox(r.issuer_id, "ISSUER", r.id, "", 10);
        st = OPS->outbox_insert(c, &o);
    }
    if (st == TD_ST_OK) {
        td_timer_rec t = make_timer(r.id, "REMINDER", 1, 50);
        st = OPS->timer_insert(c, &t);
    }
    td_dcard_rec_free(&r);
    if (st == TD_ST_OK && u->fail_at_end) st = TD_ST_INTERNAL;
    return st;
}

static void test_writer_transaction(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_dcard_rec r = make_dcard("dc-j", "iss1", "card-1", "corr-j", TD_DC_ACTIVE, 1);
    assert_int_equal(s->run_sync(s, run_dcard, &r), TD_ST_OK);

    use_case_arg fail = {.dcard = "dc-j", .fail_at_end = true};
    assert_int_equal(s->run_sync(s, run_use_case, &fail), TD_ST_INTERNAL);
    assert_int_equal(fail.seen_counts, TD_ST_OK);
    assert_int_equal(fail.live, 1);
    assert_int_equal(fail.seen_answer, TD_ST_OK); /* its own event, inside the transaction */
    /* rolled back: nothing of it remains */
    td_dcard_rec got;
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-j", &got), TD_ST_OK);
    assert_int_equal(got.d.state, TD_DC_ACTIVE);
    assert_true(got.d.seq == 1);
    td_dcard_rec_free(&got);
    char *answer = NULL;
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "ISSUER", "job-ev", &answer), TD_ST_NOT_FOUND);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM outbox"), 0);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM timers"), 0);

    use_case_arg ok = {.dcard = "dc-j"};
    assert_int_equal(s->run_sync(s, run_use_case, &ok), TD_ST_OK);
    assert_int_equal(OPS->dcard_get(rd(s), "iss1", "dc-j", &got), TD_ST_OK);
    assert_int_equal(got.d.state, TD_DC_SUSPENDED);
    assert_int_equal(got.d.suspended_by, TD_PARTY_ISSUER);
    assert_true(got.d.seq == 2);
    td_dcard_rec_free(&got);
    assert_int_equal(OPS->dcard_event_answer(rd(s), "iss1", "ISSUER", "job-ev", &answer), TD_ST_OK);
    assert_string_equal(answer, "{\"job\":1}");
    free(answer);
    /* the event id is now taken: the same job again is refused as a whole */
    use_case_arg again = {.dcard = "dc-j"};
    assert_int_equal(s->run_sync(s, run_use_case, &again), TD_ST_CONFLICT);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM outbox"), 1);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM timers"), 1);
}

/* ---- an injected fault: every new verb fails like an unreachable store ---- */

static void noop_dcard(const td_dcard_rec *r, void *arg)
{
    (void)r;
    (void)arg;
}
static void noop_outbox(const td_outbox_rec *o, void *arg)
{
    (void)o;
    (void)arg;
}
static void noop_timer(const td_timer_rec *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void test_fault_unreachable(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_conn *c = rd(s);
    s->inject_fault(s, 1);
    char *json = NULL;
    td_card_rec card;
    td_dcard_rec dc;
    td_operation_rec op;
    td_timer_rec tm;
    int a = 0, b = 0;
    int64_t times[2], due;
    size_t n;
    assert_int_equal(OPS->issuer_policy_get(c, "iss1", &json), TD_ST_ERROR);
    assert_int_equal(OPS->card_get(c, "iss1", "card-1", &card), TD_ST_ERROR);
    assert_int_equal(OPS->card_by_fp(c, "iss1", "fp", &card), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_get(c, "iss1", "dc", &dc), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_by_correlation(c, "iss1", "corr", &dc), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_list_by_card(c, "iss1", "card-1", noop_dcard, NULL), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_list_by_issuer(c, "iss1", 0, 0, 0, 10, noop_dcard, NULL), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_counts(c, "iss1", "card-1", 0, &a, &b), TD_ST_ERROR);
    assert_int_equal(OPS->dcard_event_answer(c, "iss1", "TSP", "ev", &json), TD_ST_ERROR);
    assert_int_equal(OPS->op_get(c, "iss1", "op", &op), TD_ST_ERROR);
    assert_int_equal(OPS->outbox_otp_times(c, "iss1", "dc", 0, times, 2, &n), TD_ST_ERROR);
    assert_int_equal(OPS->outbox_list(c, "iss1", NULL, 0, 10, noop_outbox, NULL), TD_ST_ERROR);
    assert_int_equal(OPS->timer_due(c, 0, 10, noop_timer, NULL), TD_ST_ERROR);
    assert_int_equal(OPS->timer_get(c, "iss1", 1, &tm), TD_ST_ERROR);
    assert_int_equal(OPS->timer_next_due(c, &due), TD_ST_ERROR);
    td_card_rec c1 = make_card("iss1", "card-1", "fp-1");
    assert_int_equal(s->run_sync(s, run_card, &c1), TD_ST_ERROR);
    s->inject_fault(s, 0);
    assert_int_equal(s->run_sync(s, run_card, &c1), TD_ST_OK);
    assert_int_equal(OPS->card_get(c, "iss1", "card-1", &card), TD_ST_OK);
}

/* ---- durability ---- */

static void test_durable_across_reopen(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_issuer(s, "iss1");
    policy_arg p = {"iss1", "{\"p\":1}"};
    assert_int_equal(s->run_sync(s, run_policy_put, &p), TD_ST_OK);
    td_card_rec card = make_card("iss1", "card-1", "fp-1");
    assert_int_equal(s->run_sync(s, run_card, &card), TD_ST_OK);
    td_dcard_rec dc = make_dcard("dc-1", "iss1", "card-1", "corr-1", TD_DC_SUSPENDED, 100);
    dc.d.suspended_by = TD_PARTY_WALLET | TD_PARTY_TSP;
    dc.device_json = "{\"dev\":true}";
    dc.idv_json = "[{\"id\":\"otp-email\"}]";
    dc.answer_json = "{\"a\":1}";
    assert_int_equal(s->run_sync(s, run_dcard, &dc), TD_ST_OK);
    td_dcard_event_rec ev = make_event("dc-1", 1, "iss1", "TSP", "ev-1");
    ev.answer_json = "{\"ans\":1}";
    assert_int_equal(s->run_sync(s, run_event, &ev), TD_ST_OK);
    td_operation_rec op = {.start_ms = 5};
    td_strlcpy(op.id, "op-1", sizeof op.id);
    td_strlcpy(op.issuer_id, "iss1", sizeof op.issuer_id);
    td_strlcpy(op.operation, "DIGITIZE", sizeof op.operation);
    td_strlcpy(op.status, "PENDING", sizeof op.status);
    td_strlcpy(op.requestor_type, "TSP", sizeof op.requestor_type);
    assert_int_equal(s->run_sync(s, run_op, &op), TD_ST_OK);
    td_outbox_rec ob = make_outbox("iss1", "USER", "dc-1", "OTP", 100);
    ob.secret_len = 40;
    memset(ob.secret_sealed, 0x5a, ob.secret_len);
    assert_int_equal(s->run_sync(s, run_outbox, &ob), TD_ST_OK);
    td_timer_rec tm = make_timer("dc-1", "STEPUP_EXPIRE", 0, 777);
    assert_int_equal(s->run_sync(s, run_timer, &tm), TD_ST_OK);
    s->close(s);
    f->s = NULL;

    /* what a committed write reported is in the database, with no store running */
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM digital_cards WHERE id = 'dc-1'"), 1);

    f->s = s = open_store(f->loc);
    td_conn *c = rd(s);
    char *json = NULL;
    assert_int_equal(OPS->issuer_policy_get(c, "iss1", &json), TD_ST_OK);
    assert_string_equal(json, "{\"p\":1}");
    free(json);
    td_card_rec gc;
    assert_int_equal(OPS->card_by_fp(c, "iss1", "fp-1", &gc), TD_ST_OK);
    check_card(&gc, &card);
    td_dcard_rec gd;
    assert_int_equal(OPS->dcard_get(c, "iss1", "dc-1", &gd), TD_ST_OK);
    assert_int_equal(gd.d.suspended_by, TD_PARTY_WALLET | TD_PARTY_TSP);
    assert_string_equal(gd.device_json, "{\"dev\":true}");
    assert_string_equal(gd.idv_json, "[{\"id\":\"otp-email\"}]");
    assert_string_equal(gd.answer_json, "{\"a\":1}");
    td_dcard_rec_free(&gd);
    char *answer = NULL;
    assert_int_equal(OPS->dcard_event_answer(c, "iss1", "TSP", "ev-1", &answer), TD_ST_OK);
    assert_string_equal(answer, "{\"ans\":1}");
    free(answer);
    td_operation_rec go;
    assert_int_equal(OPS->op_get(c, "iss1", "op-1", &go), TD_ST_OK);
    assert_string_equal(go.status, "PENDING");
    outbox_rows l = {.n = 0};
    assert_int_equal(OPS->outbox_list(c, "iss1", "PENDING", 0, 10, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_true(l.rows[0].id == ob.id);
    assert_int_equal(l.rows[0].secret_len, 40);
    assert_memory_equal(l.rows[0].secret_sealed, ob.secret_sealed, 40);
    int64_t due = 0;
    assert_int_equal(OPS->timer_next_due(c, &due), TD_ST_OK);
    assert_true(due == 777);
    td_timer_rec gt;
    assert_int_equal(OPS->timer_get(c, "iss1", tm.id, &gt), TD_ST_OK);
    assert_string_equal(gt.kind, "STEPUP_EXPIRE");
    /* ids keep increasing after a reopen (AUTOINCREMENT) */
    td_outbox_rec ob2 = make_outbox("iss1", "USER", "dc-1", "OTP", 200);
    assert_int_equal(s->run_sync(s, run_outbox, &ob2), TD_ST_OK);
    assert_true(ob2.id > ob.id);
    /* the unique indexes survive too */
    assert_int_equal(s->run_sync(s, run_event, &ev), TD_ST_CONFLICT);
    td_card_rec dup = make_card("iss1", "card-2", "fp-1");
    assert_int_equal(s->run_sync(s, run_card, &dup), TD_ST_CONFLICT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        T(test_issuer_policy),
        T(test_cards),
        T(test_contacts_in_clear),
        T(test_dcards_round_trip),
        T(test_dcard_update),
        T(test_dcard_lists),
        T(test_dcard_counts),
        T(test_dcard_events),
        T(test_operations),
        T(test_outbox),
        T(test_timers),
        T(test_other_issuer_finds_nothing),
        T(test_writer_transaction),
        T(test_fault_unreachable),
        T(test_durable_across_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
