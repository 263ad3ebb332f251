/* test_token.c — unit tests for the engine (core/token.c): every cancel
 * outcome and its precedence, effective states, the token-request machine and
 * the enum names. Pure functions: no store, no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/token.h"

#define NOW 1700000000000LL
#define FROM "m:from:1"
#define TO "m:to:1"
#define STRANGER "m:stranger:1"

static const td_kind ALL_KINDS[] = {TD_KIND_ACCESS, TD_KIND_TRANSFER, TD_KIND_STANDING_ORDER, TD_KIND_CARD};
static const td_level ALL_LEVELS[] = {TD_LEVEL_LOW, TD_LEVEL_STANDARD, TD_LEVEL_PRIVILEGED};
#define N_KINDS (sizeof ALL_KINDS / sizeof ALL_KINDS[0])
#define N_LEVELS (sizeof ALL_LEVELS / sizeof ALL_LEVELS[0])

static td_token_view view(td_kind k, td_token_state st, int64_t expires_ms)
{
    td_token_view t = {.kind = k, .state = st, .expires_ms = expires_ms, .from_id = FROM, .to_id = TO};
    if (st == TD_TS_CANCELED) t.canceled_by = FROM;
    return t;
}

/* Runs td_decide_cancel and checks both the outcome and the reason; the
 * reason is pre-set to garbage so that "always written" is checked too. */
static void expect_cancel(const td_policy *p, const td_token_view *t, const char *caller, td_level level, int64_t now,
                          td_cancel_outcome want, td_invalid_reason want_why)
{
    td_invalid_reason why = (td_invalid_reason)99;
    assert_int_equal(td_decide_cancel(p, t, caller, level, now, &why), want);
    assert_int_equal(why, want_why);
    /* why is optional. */
    assert_int_equal(td_decide_cancel(p, t, caller, level, now, NULL), want);
}

/* ---- policy ---- */

static void test_policy_default(void **state)
{
    (void)state;
    td_policy p;
    memset(&p, 0xff, sizeof p);
    td_policy_default(&p);
    assert_int_equal(p.required[TD_KIND_ACCESS], TD_LEVEL_LOW);
    assert_int_equal(p.required[TD_KIND_TRANSFER], TD_LEVEL_STANDARD);
    assert_int_equal(p.required[TD_KIND_STANDING_ORDER], TD_LEVEL_STANDARD);
    assert_int_equal(p.required[TD_KIND_CARD], TD_LEVEL_STANDARD);
}

/* ---- cancel: APPLY and MORE_SIGNATURES, per kind and level ---- */

/* Under any policy, an active token canceled by either party is APPLY exactly
 * when the key level reaches the kind's requirement, else MORE_SIGNATURES. */
static void check_level_matrix(const td_policy *p)
{
    const char *callers[] = {FROM, TO};
    for (size_t k = 0; k < N_KINDS; k++)
        for (size_t l = 0; l < N_LEVELS; l++)
            for (size_t c = 0; c < 2; c++) {
                td_token_view t = view(ALL_KINDS[k], TD_TS_ACTIVE, 0);
                bool enough = ALL_LEVELS[l] >= p->required[ALL_KINDS[k]];
                expect_cancel(p, &t, callers[c], ALL_LEVELS[l], NOW,
                              enough ? TD_CANCEL_APPLY : TD_CANCEL_MORE_SIGNATURES, TD_INVALID_NONE);
            }
}

static void test_cancel_levels_default_policy(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    check_level_matrix(&p);

    /* Spelled out, the default table. */
    td_token_view access = view(TD_KIND_ACCESS, TD_TS_ACTIVE, 0);
    expect_cancel(&p, &access, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    for (size_t k = 1; k < N_KINDS; k++) {
        td_token_view t = view(ALL_KINDS[k], TD_TS_ACTIVE, 0);
        expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_MORE_SIGNATURES, TD_INVALID_NONE);
        expect_cancel(&p, &t, TO, TD_LEVEL_LOW, NOW, TD_CANCEL_MORE_SIGNATURES, TD_INVALID_NONE);
        expect_cancel(&p, &t, FROM, TD_LEVEL_STANDARD, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
        expect_cancel(&p, &t, TO, TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    }
}

static void test_cancel_levels_custom_policy(void **state)
{
    (void)state;
    td_policy p = {.required = {[TD_KIND_ACCESS] = TD_LEVEL_PRIVILEGED,
                                [TD_KIND_TRANSFER] = TD_LEVEL_LOW,
                                [TD_KIND_STANDING_ORDER] = TD_LEVEL_PRIVILEGED,
                                [TD_KIND_CARD] = TD_LEVEL_LOW}};
    check_level_matrix(&p);

    td_token_view access = view(TD_KIND_ACCESS, TD_TS_ACTIVE, 0);
    expect_cancel(&p, &access, TO, TD_LEVEL_STANDARD, NOW, TD_CANCEL_MORE_SIGNATURES, TD_INVALID_NONE);
    expect_cancel(&p, &access, TO, TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    td_token_view transfer = view(TD_KIND_TRANSFER, TD_TS_ACTIVE, 0);
    expect_cancel(&p, &transfer, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);

    /* Every level required everywhere: only PRIVILEGED passes. */
    td_policy strict = {
        .required = {TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED}};
    check_level_matrix(&strict);
}

/* An active token whose expiry is still ahead is live. */
static void test_cancel_not_yet_expired(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    td_token_view t = view(TD_KIND_ACCESS, TD_TS_ACTIVE, NOW + 1);
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    /* expires 0 means never, however late it is. */
    t.expires_ms = 0;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, INT64_MAX, TD_CANCEL_APPLY, TD_INVALID_NONE);
}

/* ---- cancel: ALREADY ---- */

/* A repeat cancel succeeds without change: by the party that canceled, by the
 * other party, with the weakest key, whatever the policy asks. */
static void test_cancel_already(void **state)
{
    (void)state;
    td_policy def,
        strict = {.required = {TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED, TD_LEVEL_PRIVILEGED}};
    td_policy_default(&def);
    const td_policy *pols[] = {&def, &strict};
    for (size_t pi = 0; pi < 2; pi++)
        for (size_t k = 0; k < N_KINDS; k++)
            for (size_t l = 0; l < N_LEVELS; l++) {
                td_token_view t = view(ALL_KINDS[k], TD_TS_CANCELED, 0);
                expect_cancel(pols[pi], &t, FROM, ALL_LEVELS[l], NOW, TD_CANCEL_ALREADY, TD_INVALID_NONE);
                expect_cancel(pols[pi], &t, TO, ALL_LEVELS[l], NOW, TD_CANCEL_ALREADY, TD_INVALID_NONE);
            }
}

/* A canceled token stays canceled after its expiry: still ALREADY, not
 * INVALID (expired). */
static void test_cancel_already_beats_expiry(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    td_token_view t = view(TD_KIND_TRANSFER, TD_TS_CANCELED, NOW - 1000);
    t.canceled_by = TO;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_ALREADY, TD_INVALID_NONE);
    expect_cancel(&p, &t, TO, TD_LEVEL_LOW, NOW, TD_CANCEL_ALREADY, TD_INVALID_NONE);
}

/* ---- cancel: INVALID ---- */

/* Not a party is checked before everything: whatever the state, expiry or
 * level, a stranger learns only INVALID / NOT_A_PARTY. */
static void test_cancel_not_a_party_first(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    const td_token_state states[] = {TD_TS_ACTIVE, TD_TS_CANCELED, TD_TS_EXPIRED, TD_TS_REPLACED};
    const int64_t expiries[] = {0, NOW - 1, NOW, NOW + 1};
    for (size_t k = 0; k < N_KINDS; k++)
        for (size_t s = 0; s < 4; s++)
            for (size_t x = 0; x < 4; x++)
                for (size_t l = 0; l < N_LEVELS; l++) {
                    td_token_view t = view(ALL_KINDS[k], states[s], expiries[x]);
                    expect_cancel(&p, &t, STRANGER, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
                }
}

/* Party means an exact id match, not a prefix; a NULL caller or a token with
 * a missing side matches nobody on that side. */
static void test_cancel_party_exact_match(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    td_token_view t = view(TD_KIND_ACCESS, TD_TS_ACTIVE, 0);
    expect_cancel(&p, &t, "m:from:", TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    expect_cancel(&p, &t, "m:from:12", TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    expect_cancel(&p, &t, "M:FROM:1", TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    expect_cancel(&p, &t, "", TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    expect_cancel(&p, &t, NULL, TD_LEVEL_PRIVILEGED, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);

    t.to_id = NULL;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    expect_cancel(&p, &t, TO, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    t.to_id = TO;
    t.from_id = NULL;
    expect_cancel(&p, &t, TO, TD_LEVEL_LOW, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
}

/* Expired: expires_ms <= now; stored EXPIRED too. Checked before the level,
 * so a weak key gets INVALID, not MORE_SIGNATURES. */
static void test_cancel_expired(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    for (size_t k = 0; k < N_KINDS; k++)
        for (size_t l = 0; l < N_LEVELS; l++) {
            td_token_view at = view(ALL_KINDS[k], TD_TS_ACTIVE, NOW); /* boundary: == now */
            expect_cancel(&p, &at, FROM, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_EXPIRED);
            td_token_view past = view(ALL_KINDS[k], TD_TS_ACTIVE, NOW - 1);
            expect_cancel(&p, &past, TO, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_EXPIRED);
            td_token_view stored = view(ALL_KINDS[k], TD_TS_EXPIRED, 0);
            expect_cancel(&p, &stored, FROM, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_EXPIRED);
        }
    /* One millisecond earlier the same token was live. */
    td_token_view t = view(TD_KIND_ACCESS, TD_TS_ACTIVE, NOW);
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW - 1, TD_CANCEL_APPLY, TD_INVALID_NONE);
}

static void test_cancel_replaced(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    for (size_t k = 0; k < N_KINDS; k++)
        for (size_t l = 0; l < N_LEVELS; l++) {
            td_token_view t = view(ALL_KINDS[k], TD_TS_REPLACED, 0);
            expect_cancel(&p, &t, FROM, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_REPLACED);
            expect_cancel(&p, &t, TO, ALL_LEVELS[l], NOW, TD_CANCEL_INVALID, TD_INVALID_REPLACED);
        }
    /* Replaced and past its expiry: REPLACED is what it is (only ACTIVE reads as EXPIRED). */
    td_token_view t = view(TD_KIND_ACCESS, TD_TS_REPLACED, NOW - 1);
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_REPLACED);
}

/* The documented order, one step at a time: start from a token where every
 * refusal applies and remove the causes one by one. */
static void test_cancel_precedence(void **state)
{
    (void)state;
    td_policy p;
    td_policy_default(&p);
    td_token_view t = view(TD_KIND_TRANSFER, TD_TS_CANCELED, NOW - 1);
    /* 1. stranger, although canceled/expired and the key is weak */
    expect_cancel(&p, &t, STRANGER, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_NOT_A_PARTY);
    /* 2. party: canceled wins over expired and weak key */
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_ALREADY, TD_INVALID_NONE);
    /* 3. active but expired: expired wins over weak key */
    t.state = TD_TS_ACTIVE;
    t.canceled_by = NULL;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_EXPIRED);
    /* 4. replaced wins over weak key */
    t.state = TD_TS_REPLACED;
    t.expires_ms = 0;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_INVALID, TD_INVALID_REPLACED);
    /* 5. live: only the key level is left */
    t.state = TD_TS_ACTIVE;
    expect_cancel(&p, &t, FROM, TD_LEVEL_LOW, NOW, TD_CANCEL_MORE_SIGNATURES, TD_INVALID_NONE);
    /* 6. nothing wrong */
    expect_cancel(&p, &t, FROM, TD_LEVEL_STANDARD, NOW, TD_CANCEL_APPLY, TD_INVALID_NONE);
}

static void test_cancel_status_and_reason_text(void **state)
{
    (void)state;
    assert_string_equal(td_cancel_status_name(TD_CANCEL_APPLY), "SUCCESS");
    assert_string_equal(td_cancel_status_name(TD_CANCEL_ALREADY), "SUCCESS");
    assert_string_equal(td_cancel_status_name(TD_CANCEL_MORE_SIGNATURES), "MORE_SIGNATURES_NEEDED");
    assert_string_equal(td_cancel_status_name(TD_CANCEL_INVALID), "INVALID");

    assert_string_equal(td_invalid_reason_text(TD_INVALID_NONE), "");
    const td_invalid_reason rs[] = {TD_INVALID_NOT_A_PARTY, TD_INVALID_EXPIRED, TD_INVALID_REPLACED};
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(td_invalid_reason_text(rs[i]));
        assert_true(strlen(td_invalid_reason_text(rs[i])) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(td_invalid_reason_text(rs[i]), td_invalid_reason_text(rs[j]));
    }
    assert_non_null(strstr(td_invalid_reason_text(TD_INVALID_EXPIRED), "expired"));
    assert_non_null(strstr(td_invalid_reason_text(TD_INVALID_REPLACED), "replaced"));
}

/* ---- effective state ---- */

static void test_token_effective_state(void **state)
{
    (void)state;
    assert_int_equal(td_token_effective_state(TD_TS_ACTIVE, 0, NOW), TD_TS_ACTIVE);
    assert_int_equal(td_token_effective_state(TD_TS_ACTIVE, 0, INT64_MAX), TD_TS_ACTIVE);
    assert_int_equal(td_token_effective_state(TD_TS_ACTIVE, NOW + 1, NOW), TD_TS_ACTIVE);
    assert_int_equal(td_token_effective_state(TD_TS_ACTIVE, NOW, NOW), TD_TS_EXPIRED);
    assert_int_equal(td_token_effective_state(TD_TS_ACTIVE, NOW - 1, NOW), TD_TS_EXPIRED);
    /* Only ACTIVE changes with time. */
    const td_token_state others[] = {TD_TS_CANCELED, TD_TS_EXPIRED, TD_TS_REPLACED};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(td_token_effective_state(others[i], 0, NOW), others[i]);
        assert_int_equal(td_token_effective_state(others[i], NOW - 1, NOW), others[i]);
        assert_int_equal(td_token_effective_state(others[i], NOW + 1, NOW), others[i]);
    }
}

/* ---- token requests ---- */

static void test_request_effective_state(void **state)
{
    (void)state;
    td_request_view r = {.state = TD_TRS_PENDING, .expires_ms = NOW + 1};
    assert_int_equal(td_request_effective_state(&r, NOW), TD_TRS_PENDING);
    r.expires_ms = NOW;
    assert_int_equal(td_request_effective_state(&r, NOW), TD_TRS_EXPIRED);
    r.expires_ms = NOW - 1;
    assert_int_equal(td_request_effective_state(&r, NOW), TD_TRS_EXPIRED);
    r.expires_ms = 0; /* no expiry */
    assert_int_equal(td_request_effective_state(&r, INT64_MAX), TD_TRS_PENDING);

    /* A decided request keeps its state after the expiry passes. */
    const td_request_state decided[] = {TD_TRS_PROCESSED, TD_TRS_REJECTED, TD_TRS_EXPIRED};
    for (size_t i = 0; i < 3; i++) {
        td_request_view d = {.state = decided[i], .expires_ms = NOW - 1};
        assert_int_equal(td_request_effective_state(&d, NOW), decided[i]);
        d.expires_ms = NOW + 1;
        assert_int_equal(td_request_effective_state(&d, NOW), decided[i]);
    }
}

static void test_decide_request(void **state)
{
    (void)state;
    td_request_view r = {.state = TD_TRS_PENDING, .expires_ms = NOW + 1000};
    assert_int_equal(td_decide_request(&r, NOW), TD_REQ_OK);
    r.expires_ms = 0;
    assert_int_equal(td_decide_request(&r, NOW), TD_REQ_OK);

    /* Already decided: processed, rejected, or the consent code was used. */
    r.state = TD_TRS_PROCESSED;
    assert_int_equal(td_decide_request(&r, NOW), TD_REQ_ALREADY_DECIDED);
    r.state = TD_TRS_REJECTED;
    assert_int_equal(td_decide_request(&r, NOW), TD_REQ_ALREADY_DECIDED);
    r.state = TD_TRS_PENDING;
    r.consent_used = true;
    assert_int_equal(td_decide_request(&r, NOW), TD_REQ_ALREADY_DECIDED);

    /* Expired, stored or by time. */
    td_request_view x = {.state = TD_TRS_EXPIRED};
    assert_int_equal(td_decide_request(&x, NOW), TD_REQ_EXPIRED);
    x.state = TD_TRS_PENDING;
    x.expires_ms = NOW;
    assert_int_equal(td_decide_request(&x, NOW), TD_REQ_EXPIRED);
    /* Expiry is reported before a used consent on a pending request. */
    x.consent_used = true;
    assert_int_equal(td_decide_request(&x, NOW), TD_REQ_EXPIRED);

    /* A processed request whose expiry passed is still "already decided". */
    td_request_view p = {.state = TD_TRS_PROCESSED, .expires_ms = NOW - 1};
    assert_int_equal(td_decide_request(&p, NOW), TD_REQ_ALREADY_DECIDED);
    p.state = TD_TRS_REJECTED;
    assert_int_equal(td_decide_request(&p, NOW), TD_REQ_ALREADY_DECIDED);
}

static void test_request_can_authorize(void **state)
{
    (void)state;
    td_request_view r = {.state = TD_TRS_PENDING, .expires_ms = NOW + 1};
    assert_true(td_request_can_authorize(&r, NOW));
    /* A used consent does not stop a new link: only the state matters. */
    r.consent_used = true;
    assert_true(td_request_can_authorize(&r, NOW));
    assert_false(td_request_can_authorize(&r, NOW + 1));
    r.expires_ms = 0;
    assert_true(td_request_can_authorize(&r, INT64_MAX));
    const td_request_state decided[] = {TD_TRS_PROCESSED, TD_TRS_REJECTED, TD_TRS_EXPIRED};
    for (size_t i = 0; i < 3; i++) {
        td_request_view d = {.state = decided[i], .expires_ms = NOW + 1000};
        assert_false(td_request_can_authorize(&d, NOW));
    }
}

/* ---- names and parsing ---- */

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"ACCESS", "TRANSFER", "STANDING_ORDER", "CARD"};
    static const char *const prefixes[] = {"ta", "tt", "so", "tc"};
    for (int k = 0; k < TD_KIND__COUNT; k++) {
        assert_string_equal(td_kind_name((td_kind)k), names[k]);
        assert_string_equal(td_kind_prefix((td_kind)k), prefixes[k]);
        td_kind back = (td_kind)-1;
        assert_int_equal(td_kind_parse(td_kind_name((td_kind)k), &back), 0);
        assert_int_equal(back, k);
    }
    static const char *const bad[] = {"",        "access",         "Access", "ACCESS ", " ACCESS", "ACCES",
                                      "ACCESSX", "STANDING-ORDER", "ta",     "0",       "LOW"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_kind out = TD_KIND_CARD;
        assert_int_equal(td_kind_parse(bad[i], &out), -1);
        assert_int_equal(out, TD_KIND_CARD); /* untouched on failure */
    }
    td_kind out = TD_KIND_CARD;
    assert_int_equal(td_kind_parse(NULL, &out), -1);
    assert_int_equal(out, TD_KIND_CARD);
}

static void test_level_names(void **state)
{
    (void)state;
    static const char *const names[] = {"LOW", "STANDARD", "PRIVILEGED"};
    for (size_t l = 0; l < N_LEVELS; l++) {
        assert_string_equal(td_level_name(ALL_LEVELS[l]), names[l]);
        td_level back = (td_level)-1;
        assert_int_equal(td_level_parse(names[l], &back), 0);
        assert_int_equal(back, ALL_LEVELS[l]);
    }
    /* Levels are ordered: the engine compares them with <. */
    assert_true(TD_LEVEL_LOW < TD_LEVEL_STANDARD && TD_LEVEL_STANDARD < TD_LEVEL_PRIVILEGED);
    static const char *const bad[] = {"", "low", "STANDARD\n", "PRIVILEGE", "HIGH", "ACCESS", "1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_level out = TD_LEVEL_STANDARD;
        assert_int_equal(td_level_parse(bad[i], &out), -1);
        assert_int_equal(out, TD_LEVEL_STANDARD);
    }
    td_level out;
    assert_int_equal(td_level_parse(NULL, &out), -1);
}

static void test_token_state_names(void **state)
{
    (void)state;
    static const char *const names[] = {"ACTIVE", "CANCELED", "EXPIRED", "REPLACED"};
    const td_token_state sts[] = {TD_TS_ACTIVE, TD_TS_CANCELED, TD_TS_EXPIRED, TD_TS_REPLACED};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(td_token_state_name(sts[i]), names[i]);
        td_token_state back = (td_token_state)-1;
        assert_int_equal(td_token_state_parse(names[i], &back), 0);
        assert_int_equal(back, sts[i]);
    }
    static const char *const bad[] = {"", "active", "CANCELLED", "PENDING", "EXPIRE", "REPLACED "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_token_state out = TD_TS_REPLACED;
        assert_int_equal(td_token_state_parse(bad[i], &out), -1);
        assert_int_equal(out, TD_TS_REPLACED);
    }
    td_token_state out;
    assert_int_equal(td_token_state_parse(NULL, &out), -1);
}

static void test_request_state_names(void **state)
{
    (void)state;
    static const char *const names[] = {"PENDING", "PROCESSED", "REJECTED", "EXPIRED"};
    const td_request_state sts[] = {TD_TRS_PENDING, TD_TRS_PROCESSED, TD_TRS_REJECTED, TD_TRS_EXPIRED};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(td_request_state_name(sts[i]), names[i]);
        td_request_state back = (td_request_state)-1;
        assert_int_equal(td_request_state_parse(names[i], &back), 0);
        assert_int_equal(back, sts[i]);
    }
    static const char *const bad[] = {"", "pending", "ACTIVE", "CANCELED", "PROCESSING", "REJECT"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_request_state out = TD_TRS_REJECTED;
        assert_int_equal(td_request_state_parse(bad[i], &out), -1);
        assert_int_equal(out, TD_TRS_REJECTED);
    }
    td_request_state out;
    assert_int_equal(td_request_state_parse(NULL, &out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_default),
        cmocka_unit_test(test_cancel_levels_default_policy),
        cmocka_unit_test(test_cancel_levels_custom_policy),
        cmocka_unit_test(test_cancel_not_yet_expired),
        cmocka_unit_test(test_cancel_already),
        cmocka_unit_test(test_cancel_already_beats_expiry),
        cmocka_unit_test(test_cancel_not_a_party_first),
        cmocka_unit_test(test_cancel_party_exact_match),
        cmocka_unit_test(test_cancel_expired),
        cmocka_unit_test(test_cancel_replaced),
        cmocka_unit_test(test_cancel_precedence),
        cmocka_unit_test(test_cancel_status_and_reason_text),
        cmocka_unit_test(test_token_effective_state),
        cmocka_unit_test(test_request_effective_state),
        cmocka_unit_test(test_decide_request),
        cmocka_unit_test(test_request_can_authorize),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_level_names),
        cmocka_unit_test(test_token_state_names),
        cmocka_unit_test(test_request_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
