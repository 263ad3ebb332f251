/* test_decision.c — unit tests for core/decision.c: each decision rule alone,
 * their order, every threshold at its boundary, phone/email comparison,
 * masking, the ID&V method list, the OTP rate check, Luhn/PAN/expiry and the
 * UTC calendar helper. Pure: no store, no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/decision.h"

#define GREEN TD_VERDICT_GREEN
#define YELLOW TD_VERDICT_YELLOW
#define RED TD_VERDICT_RED

/* A request every rule lets through: a known, active, unexpired card, no
 * counters near their limits, good scores, matching contact data. */
static td_decision_input good(void)
{
    td_decision_input in;
    memset(&in, 0, sizeof in);
    in.card_found = true;
    in.card_state = TD_CS_ACTIVE;
    in.exp_month = 12;
    in.exp_year = 2027;
    in.now_month = 6;
    in.now_year = 2025;
    in.active_tokens = 2;
    in.attempts_last_hour = 1;
    in.wallet_score = 5;
    in.device_score = 4;
    in.phone = "+33 6 12 34 56 78";
    in.reg_phone = "0612345678";
    in.email = "Jane.Doe@Example.com ";
    in.reg_email = "jane.doe@example.com";
    return in;
}

static td_decision_policy defaults(void)
{
    td_decision_policy p;
    td_decision_policy_default(&p);
    return p;
}

static void expect(const td_decision_policy *p, const td_decision_input *in, td_verdict v, td_decision_reason r)
{
    td_decision_result res = td_decide_tokenization(p, in);
    if (res.verdict != v || res.reason != r)
        fail_msg("got %s/%s, want %s/%s", td_verdict_name(res.verdict), td_decision_reason_name(res.reason),
                 td_verdict_name(v), td_decision_reason_name(r));
}

/* ---- policy ---- */

static void test_policy_default(void **state)
{
    (void)state;
    td_decision_policy p;
    memset(&p, 0x7f, sizeof p);
    td_decision_policy_default(&p);
    assert_int_equal(p.max_active_tokens, 10);
    assert_int_equal(p.max_attempts_per_hour, 10);
    assert_int_equal(p.red_below, 2);
    assert_int_equal(p.yellow_below, 4);
    assert_int_equal(p.phone_mismatch, YELLOW);
    assert_int_equal(p.email_mismatch, YELLOW);
    assert_int_equal(p.phone_match_digits, 9);
    assert_int_equal(td_decision_policy_check(&p), 0);
}

static void test_policy_check(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    p.max_active_tokens = 0;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p = defaults();
    p.max_attempts_per_hour = 0;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p = defaults();
    p.red_below = 5, p.yellow_below = 4;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p.red_below = 4, p.yellow_below = 4; /* no YELLOW band: allowed */
    assert_int_equal(td_decision_policy_check(&p), 0);
    p.red_below = 0, p.yellow_below = 6; /* never RED, always YELLOW: allowed */
    assert_int_equal(td_decision_policy_check(&p), 0);
    p.yellow_below = 7;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p = defaults();
    p.red_below = -1;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p = defaults();
    p.phone_match_digits = 16;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p.phone_match_digits = 0;
    assert_int_equal(td_decision_policy_check(&p), 0);
    p.phone_match_digits = -1;
    assert_int_equal(td_decision_policy_check(&p), -1);
    p = defaults();
    p.email_mismatch = (td_verdict)3;
    assert_int_equal(td_decision_policy_check(&p), -1);
}

/* ---- each rule alone ---- */

static void test_green(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    td_decision_input in = good();
    expect(&p, &in, GREEN, TD_RC_NONE);
}

static void test_each_rule(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    td_decision_input in;

    in = good(), in.card_found = false;
    expect(&p, &in, RED, TD_RC_CARD_UNKNOWN);
    in = good(), in.card_state = TD_CS_DELETED;
    expect(&p, &in, RED, TD_RC_CARD_DELETED);
    in = good(), in.card_state = TD_CS_SUSPENDED;
    expect(&p, &in, RED, TD_RC_CARD_SUSPENDED);
    in = good(), in.exp_year = 2025, in.exp_month = 5;
    expect(&p, &in, RED, TD_RC_CARD_EXPIRED);
    in = good(), in.active_tokens = 10;
    expect(&p, &in, RED, TD_RC_TOO_MANY_TOKENS);
    in = good(), in.attempts_last_hour = 10;
    expect(&p, &in, RED, TD_RC_TOO_MANY_ATTEMPTS);
    in = good(), in.wallet_score = 1;
    expect(&p, &in, RED, TD_RC_LOW_WALLET_SCORE);
    in = good(), in.wallet_score = 3;
    expect(&p, &in, YELLOW, TD_RC_LOW_WALLET_SCORE);
    in = good(), in.device_score = 1;
    expect(&p, &in, RED, TD_RC_LOW_DEVICE_SCORE);
    in = good(), in.device_score = 2;
    expect(&p, &in, YELLOW, TD_RC_LOW_DEVICE_SCORE);
    in = good(), in.phone = "+33 6 12 34 56 79";
    expect(&p, &in, YELLOW, TD_RC_PHONE_MISMATCH);
    in = good(), in.email = "john@example.com";
    expect(&p, &in, YELLOW, TD_RC_EMAIL_MISMATCH);
}

static void test_unknown_card_ignores_its_state(void **state)
{
    (void)state;
    /* Without a card, its state and expiry mean nothing. */
    td_decision_policy p = defaults();
    td_decision_input in = good();
    in.card_found = false;
    in.card_state = TD_CS_DELETED;
    in.exp_month = 0;
    expect(&p, &in, RED, TD_RC_CARD_UNKNOWN);
}

/* ---- order ---- */

static void test_order(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    /* Everything wrong at once: each step removes the first rule that fired
     * and the next one in the documented order answers. */
    td_decision_input in = good();
    in.card_found = false;
    in.card_state = TD_CS_DELETED;
    in.exp_month = 1, in.exp_year = 2020;
    in.active_tokens = 50;
    in.attempts_last_hour = 50;
    in.wallet_score = 1;
    in.device_score = 1;
    in.phone = "0700000000";
    in.email = "x@y.z";
    expect(&p, &in, RED, TD_RC_CARD_UNKNOWN);
    in.card_found = true;
    expect(&p, &in, RED, TD_RC_CARD_DELETED);
    in.card_state = TD_CS_SUSPENDED;
    expect(&p, &in, RED, TD_RC_CARD_SUSPENDED);
    in.card_state = TD_CS_ACTIVE;
    expect(&p, &in, RED, TD_RC_CARD_EXPIRED);
    in.exp_year = 2030;
    expect(&p, &in, RED, TD_RC_TOO_MANY_TOKENS);
    in.active_tokens = 0;
    expect(&p, &in, RED, TD_RC_TOO_MANY_ATTEMPTS);
    in.attempts_last_hour = 0;
    expect(&p, &in, RED, TD_RC_LOW_WALLET_SCORE);
    in.wallet_score = 3; /* YELLOW now, but a RED rule still fires later */
    expect(&p, &in, RED, TD_RC_LOW_DEVICE_SCORE);
    in.device_score = 3;
    expect(&p, &in, YELLOW, TD_RC_LOW_WALLET_SCORE);
    in.wallet_score = 0;
    expect(&p, &in, YELLOW, TD_RC_LOW_DEVICE_SCORE);
    in.device_score = 5;
    expect(&p, &in, YELLOW, TD_RC_PHONE_MISMATCH);
    in.phone = NULL;
    expect(&p, &in, YELLOW, TD_RC_EMAIL_MISMATCH);
    in.email = "";
    expect(&p, &in, GREEN, TD_RC_NONE);
}

static void test_red_rules_before_yellow(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    /* A YELLOW score before a RED mismatch (configured so): RED wins. */
    p.phone_mismatch = RED;
    td_decision_input in = good();
    in.wallet_score = 2;
    in.phone = "0799999999";
    expect(&p, &in, RED, TD_RC_PHONE_MISMATCH);
    p.phone_mismatch = YELLOW;
    expect(&p, &in, YELLOW, TD_RC_LOW_WALLET_SCORE);
    /* GREEN means "not checked". */
    p.phone_mismatch = GREEN;
    in.wallet_score = 5;
    expect(&p, &in, GREEN, TD_RC_NONE);
    p.email_mismatch = RED;
    in.email = "other@example.com";
    expect(&p, &in, RED, TD_RC_EMAIL_MISMATCH);
    p.email_mismatch = GREEN;
    expect(&p, &in, GREEN, TD_RC_NONE);
}

/* ---- thresholds at their boundaries ---- */

static void test_score_boundaries(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    static const struct {
        int score;
        td_verdict v;
    } cases[] = {{-1, GREEN}, {0, GREEN}, {1, RED}, {2, YELLOW}, {3, YELLOW}, {4, GREEN}, {5, GREEN}, {6, GREEN}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_decision_input in = good();
        in.wallet_score = cases[i].score;
        expect(&p, &in, cases[i].v, cases[i].v == GREEN ? TD_RC_NONE : TD_RC_LOW_WALLET_SCORE);
        in = good();
        in.device_score = cases[i].score;
        expect(&p, &in, cases[i].v, cases[i].v == GREEN ? TD_RC_NONE : TD_RC_LOW_DEVICE_SCORE);
    }
    /* Custom: below 3 RED, no YELLOW band. */
    p.red_below = 3, p.yellow_below = 3;
    td_decision_input in = good();
    in.wallet_score = 2;
    expect(&p, &in, RED, TD_RC_LOW_WALLET_SCORE);
    in.wallet_score = 3;
    expect(&p, &in, GREEN, TD_RC_NONE);
    /* Never RED, always YELLOW. */
    p.red_below = 0, p.yellow_below = 6;
    in.wallet_score = 1;
    expect(&p, &in, YELLOW, TD_RC_LOW_WALLET_SCORE);
    in.wallet_score = 5;
    expect(&p, &in, YELLOW, TD_RC_LOW_WALLET_SCORE);
}

static void test_counter_boundaries(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    td_decision_input in = good();
    in.active_tokens = 9;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in.active_tokens = 10;
    expect(&p, &in, RED, TD_RC_TOO_MANY_TOKENS);
    in = good();
    in.attempts_last_hour = 9;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in.attempts_last_hour = 10;
    expect(&p, &in, RED, TD_RC_TOO_MANY_ATTEMPTS);
    p.max_active_tokens = 1, p.max_attempts_per_hour = 3;
    in = good();
    in.active_tokens = 0, in.attempts_last_hour = 2;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in.active_tokens = 1;
    expect(&p, &in, RED, TD_RC_TOO_MANY_TOKENS);
    in.active_tokens = 0, in.attempts_last_hour = 3;
    expect(&p, &in, RED, TD_RC_TOO_MANY_ATTEMPTS);
}

static void test_counts_token(void **state)
{
    (void)state;
    assert_true(td_decision_counts_token(TD_DC_PENDING_IDV));
    assert_true(td_decision_counts_token(TD_DC_ACTIVE));
    assert_true(td_decision_counts_token(TD_DC_SUSPENDED));
    assert_false(td_decision_counts_token(TD_DC_DELETED));
    assert_false(td_decision_counts_token(TD_DC_DECLINED));
    assert_false(td_decision_counts_token(TD_DC_EXPIRED));
}

static void test_expiry_boundaries(void **state)
{
    (void)state;
    td_decision_policy p = defaults();
    td_decision_input in = good();        /* now is 06/2025 */
    in.exp_month = 6, in.exp_year = 2025; /* valid through the end of June */
    expect(&p, &in, GREEN, TD_RC_NONE);
    in.exp_month = 5;
    expect(&p, &in, RED, TD_RC_CARD_EXPIRED);
    in.exp_month = 1, in.exp_year = 2026;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in.exp_month = 12, in.exp_year = 2024;
    expect(&p, &in, RED, TD_RC_CARD_EXPIRED);
    in.exp_month = 0, in.exp_year = 2099;
    expect(&p, &in, RED, TD_RC_CARD_EXPIRED);

    assert_false(td_expiry_passed(1, 2026, 12, 2025));
    assert_true(td_expiry_passed(12, 2025, 1, 2026));
    assert_false(td_expiry_passed(12, 2025, 12, 2025));
    assert_true(td_expiry_passed(11, 2025, 12, 2025));
    assert_true(td_expiry_passed(13, 2030, 1, 2025));
    assert_true(td_expiry_passed(0, 2030, 1, 2025));
}

/* ---- phone and email comparison ---- */

static void test_phone_digits(void **state)
{
    (void)state;
    char d[8];
    assert_int_equal(td_phone_digits("+33 (0)6-12", d, sizeof d), 6);
    assert_string_equal(d, "330612");
    assert_int_equal(td_phone_digits("", d, sizeof d), 0);
    assert_string_equal(d, "");
    assert_int_equal(td_phone_digits(NULL, d, sizeof d), 0);
    assert_int_equal(td_phone_digits("1234567", d, sizeof d), 7);
    assert_int_equal(td_phone_digits("12345678", d, sizeof d), -1);
    assert_string_equal(d, "");
    assert_int_equal(td_phone_digits("1", d, 0), -1);
}

static void test_phone_match(void **state)
{
    (void)state;
    /* The same French mobile written four ways. */
    assert_true(td_phone_match("+33 6 12 34 56 78", "0612345678", 9));
    assert_true(td_phone_match("0033612345678", "06.12.34.56.78", 9));
    assert_true(td_phone_match("+33612345678", "+33 (0)6 12 34 56 78", 9));
    assert_false(td_phone_match("+33 6 12 34 56 79", "0612345678", 9));
    assert_false(td_phone_match("+33 7 12 34 56 78", "0612345678", 9));
    /* All digits: the trunk 0 and the country code differ. */
    assert_false(td_phone_match("+33612345678", "0612345678", 0));
    assert_true(td_phone_match("+33 612345678", "33-612-345-678", 0));
    /* An 8-digit plan: national and international forms match on 8. */
    assert_true(td_phone_match("+45 12 34 56 78", "12345678", 9));
    assert_false(td_phone_match("+45 12 34 56 78", "12345679", 9));
    assert_true(td_phone_match("+45 1234567", "1234567", 9)); /* 7: the shortest suffix */
    /* Under 7 digits on either side: all digits. */
    assert_true(td_phone_match("123456", "1-2-3-4-5-6", 9));
    assert_false(td_phone_match("123456", "9123456", 9));
    assert_true(td_phone_match("12345", "1-2-3-4-5", 9));
    assert_false(td_phone_match("12345", "912345", 9));
    /* Exactly n digits on one side. */
    assert_true(td_phone_match("612345678", "+33612345678", 9));
    /* Missing. */
    assert_false(td_phone_match(NULL, "0612345678", 9));
    assert_false(td_phone_match("", "0612345678", 9));
    assert_false(td_phone_match("n/a", "n/a", 9));
}

static void test_phone_rule_missing_data(void **state)
{
    (void)state;
    /* Nothing to compare is not a mismatch. */
    td_decision_policy p = defaults();
    td_decision_input in = good();
    in.phone = NULL;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in = good(), in.phone = "";
    expect(&p, &in, GREEN, TD_RC_NONE);
    in = good(), in.reg_phone = NULL;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in = good(), in.email = NULL;
    expect(&p, &in, GREEN, TD_RC_NONE);
    in = good(), in.reg_email = "";
    expect(&p, &in, GREEN, TD_RC_NONE);
    /* Given but with no digits at all: a mismatch. */
    in = good(), in.phone = "unknown";
    expect(&p, &in, YELLOW, TD_RC_PHONE_MISMATCH);
    /* The digit count is the issuer's choice. */
    p.phone_match_digits = 0;
    in = good();
    expect(&p, &in, YELLOW, TD_RC_PHONE_MISMATCH);
}

static void test_email_match(void **state)
{
    (void)state;
    assert_true(td_email_match("Jane.Doe@Example.COM", "jane.doe@example.com"));
    assert_true(td_email_match("  jane@example.com\t", "jane@example.com"));
    assert_false(td_email_match("jane@example.com", "jane@example.org"));
    assert_false(td_email_match("jane@example.com", "jane@example.co"));
    assert_false(td_email_match("", ""));
    assert_false(td_email_match("   ", "   "));
    assert_false(td_email_match(NULL, "a@b.c"));
    assert_false(td_email_match("a@b.c", NULL));
}

/* ---- masking ---- */

static void test_mask_phone(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(td_mask_phone("+33612341234", out, sizeof out), 0);
    assert_string_equal(out, "*******1234");
    assert_int_equal(td_mask_phone("06 12 34 56 78", out, sizeof out), 0);
    assert_string_equal(out, "******5678");
    assert_int_equal(td_mask_phone("1234567", out, sizeof out), 0); /* 7 digits: the shortest */
    assert_string_equal(out, "***4567");
    assert_int_equal(td_mask_phone("123456", out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(td_mask_phone("123456789012345", out, sizeof out), 0); /* 15: the longest */
    assert_string_equal(out, "***********2345");
    assert_int_equal(td_mask_phone("1234567890123456", out, sizeof out), -1);
    assert_int_equal(td_mask_phone(NULL, out, sizeof out), -1);
    assert_int_equal(td_mask_phone("", out, sizeof out), -1);
    /* Room for exactly the mask, and one byte short. */
    assert_int_equal(td_mask_phone("+33612341234", out, 12), 0);
    assert_string_equal(out, "*******1234");
    assert_int_equal(td_mask_phone("+33612341234", out, 11), -1);
    assert_string_equal(out, "");
}

static void test_mask_email(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(td_mask_email("john@example.com", out, sizeof out), 0);
    assert_string_equal(out, "j***@example.com");
    assert_int_equal(td_mask_email("a@b.c", out, sizeof out), 0);
    assert_string_equal(out, "a***@b.c");
    /* A multibyte first character is kept whole. */
    assert_int_equal(td_mask_email("\xc3\xa9lise@example.fr", out, sizeof out), 0);
    assert_string_equal(out, "\xc3\xa9***@example.fr");
    assert_int_equal(td_mask_email("\xe2\x82\xac@x.y", out, sizeof out), 0);
    assert_string_equal(out, "\xe2\x82\xac***@x.y");
    static const char *bad[] = {"", "@example.com", "john@", "john", "a@b@c", "jo hn@example.com", "john@exa\tmple"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 'x', sizeof out);
        assert_int_equal(td_mask_email(bad[i], out, sizeof out), -1);
        assert_string_equal(out, "");
    }
    assert_int_equal(td_mask_email(NULL, out, sizeof out), -1);
    /* "j***@b.c" is 8 characters: 9 bytes fit, 8 do not. */
    assert_int_equal(td_mask_email("jane@b.c", out, 9), 0);
    assert_string_equal(out, "j***@b.c");
    assert_int_equal(td_mask_email("jane@b.c", out, 8), -1);
}

/* ---- ID&V methods ---- */

static td_idv_config config(void)
{
    td_idv_config c;
    td_idv_config_default(&c);
    snprintf(c.app_label, sizeof c.app_label, "%s", "MyBank app");
    snprintf(c.service_phone, sizeof c.service_phone, "%s", "+44 20 7946 0000");
    return c;
}

static void expect_method(const td_idv_method *m, td_idv_type t, const char *id, const char *value)
{
    assert_int_equal(m->type, t);
    assert_string_equal(m->id, id);
    assert_string_equal(m->value, value);
}

static void test_idv_all_methods(void **state)
{
    (void)state;
    td_idv_config c = config();
    assert_int_equal(td_idv_config_check(&c), 0);
    td_idv_list l;
    assert_int_equal(td_idv_methods(&c, "+33612341234", "jane@example.com", &l), 4);
    assert_int_equal(l.n, 4);
    expect_method(&l.m[0], TD_IDV_OTP_SMS, "otp-sms", "*******1234");
    expect_method(&l.m[1], TD_IDV_OTP_EMAIL, "otp-email", "j***@example.com");
    expect_method(&l.m[2], TD_IDV_ISSUER_APP, "issuer-app", "MyBank app");
    expect_method(&l.m[3], TD_IDV_CUSTOMER_SERVICE, "customer-service", "+44 20 7946 0000");
    /* Found by id, as an OTP delivery request names it. */
    assert_ptr_equal(td_idv_find(&l, "otp-email"), &l.m[1]);
    assert_null(td_idv_find(&l, "otp-voice"));
    assert_null(td_idv_find(&l, NULL));
}

static void test_idv_missing_data_left_out(void **state)
{
    (void)state;
    td_idv_config c = config();
    td_idv_list l;
    assert_int_equal(td_idv_methods(&c, NULL, "jane@example.com", &l), 3);
    expect_method(&l.m[0], TD_IDV_OTP_EMAIL, "otp-email", "j***@example.com");
    assert_int_equal(td_idv_methods(&c, "+33612341234", "not-an-email", &l), 3);
    expect_method(&l.m[0], TD_IDV_OTP_SMS, "otp-sms", "*******1234");
    expect_method(&l.m[1], TD_IDV_ISSUER_APP, "issuer-app", "MyBank app");
    c.app_label[0] = '\0';
    assert_int_equal(td_idv_methods(&c, "123", "", &l), 1);
    expect_method(&l.m[0], TD_IDV_CUSTOMER_SERVICE, "customer-service", "+44 20 7946 0000");
}

static void test_idv_fallback(void **state)
{
    (void)state;
    /* The issuer offers only SMS, and there is no phone: customer service is
     * offered anyway, so a YELLOW never strands the end user. */
    td_idv_config c = config();
    c.offered[0] = TD_IDV_OTP_SMS;
    c.n_offered = 1;
    td_idv_list l;
    assert_int_equal(td_idv_methods(&c, NULL, "jane@example.com", &l), 1);
    expect_method(&l.m[0], TD_IDV_CUSTOMER_SERVICE, "customer-service", "+44 20 7946 0000");
    /* With a phone, only SMS. */
    assert_int_equal(td_idv_methods(&c, "0612345678", NULL, &l), 1);
    expect_method(&l.m[0], TD_IDV_OTP_SMS, "otp-sms", "******5678");
    /* Nothing configured at all, no number: no method (CUSTOMER_SERVICE is never
     * offered with an empty number), and the YELLOW becomes RED NO_IDV_METHOD. */
    c.n_offered = 0;
    c.service_phone[0] = '\0';
    assert_int_equal(td_idv_methods(&c, "0612345678", "jane@example.com", &l), 0);
    td_decision_result d = {TD_VERDICT_YELLOW, TD_RC_PHONE_MISMATCH};
    td_idv_settle(&d, &l);
    assert_int_equal(d.verdict, TD_VERDICT_RED);
    assert_int_equal(d.reason, TD_RC_NO_IDV_METHOD);
    /* Listed, but without a number: left out like any method without its data. */
    c.offered[0] = TD_IDV_CUSTOMER_SERVICE;
    c.offered[1] = TD_IDV_OTP_SMS;
    c.n_offered = 2;
    assert_int_equal(td_idv_methods(&c, "0612345678", NULL, &l), 1);
    expect_method(&l.m[0], TD_IDV_OTP_SMS, "otp-sms", "******5678");
    /* A list with a method leaves the YELLOW alone; GREEN and RED are untouched. */
    d = (td_decision_result){TD_VERDICT_YELLOW, TD_RC_PHONE_MISMATCH};
    td_idv_settle(&d, &l);
    assert_int_equal(d.verdict, TD_VERDICT_YELLOW);
    assert_int_equal(d.reason, TD_RC_PHONE_MISMATCH);
    l.n = 0;
    d = (td_decision_result){TD_VERDICT_GREEN, TD_RC_NONE};
    td_idv_settle(&d, &l);
    assert_int_equal(d.verdict, TD_VERDICT_GREEN);
}

static void test_idv_order_and_repeats(void **state)
{
    (void)state;
    td_idv_config c = config();
    c.offered[0] = TD_IDV_ISSUER_APP;
    c.offered[1] = TD_IDV_OTP_EMAIL;
    c.offered[2] = TD_IDV_ISSUER_APP;
    c.n_offered = 3;
    assert_int_equal(td_idv_config_check(&c), -1); /* a repeat is a configuration error */
    td_idv_list l;
    assert_int_equal(td_idv_methods(&c, "0612345678", "jane@example.com", &l), 2);
    expect_method(&l.m[0], TD_IDV_ISSUER_APP, "issuer-app", "MyBank app");
    expect_method(&l.m[1], TD_IDV_OTP_EMAIL, "otp-email", "j***@example.com");
}

static void test_idv_config_check(void **state)
{
    (void)state;
    td_idv_config c = config();
    assert_int_equal(td_idv_config_check(&c), 0);
    c.service_phone[0] = '\0';
    assert_int_equal(td_idv_config_check(&c), -1);
    c = config();
    c.n_offered = 5;
    assert_int_equal(td_idv_config_check(&c), -1);
    c = config();
    c.offered[1] = (td_idv_type)9;
    assert_int_equal(td_idv_config_check(&c), -1);
    c = config();
    c.n_offered = 0; /* offering nothing leaves the fallback */
    assert_int_equal(td_idv_config_check(&c), 0);
    td_idv_config_default(&c);
    assert_int_equal(c.n_offered, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c.offered[i], i);
    assert_string_equal(c.app_label, "");
}

static void test_idv_names(void **state)
{
    (void)state;
    for (int i = 0; i < TD_IDV__COUNT; i++) {
        td_idv_type t;
        assert_int_equal(td_idv_type_parse(td_idv_type_name((td_idv_type)i), &t), 0);
        assert_int_equal(t, i);
        assert_int_equal(td_idv_method_id_parse(td_idv_method_id((td_idv_type)i), &t), 0);
        assert_int_equal(t, i);
    }
    td_idv_type t;
    assert_int_equal(td_idv_type_parse("OTP_VOICE", &t), -1);
    assert_int_equal(td_idv_method_id_parse("OTP_SMS", &t), -1);
    assert_string_equal(td_idv_type_name(TD_IDV_CUSTOMER_SERVICE), "CUSTOMER_SERVICE");
}

/* ---- OTP delivery rate ---- */

#define NOW 1700000000000LL
#define MIN 60000LL

static void test_otp_rate_allows(void **state)
{
    (void)state;
    td_otp_limit l;
    td_otp_limit_default(&l);
    assert_int_equal(l.max, 3);
    assert_int_equal(l.window_ms, 10 * MIN);
    int64_t retry = -1;
    assert_true(td_otp_rate_check(&l, NULL, 0, NOW, &retry));
    assert_int_equal(retry, 0);
    int64_t two[] = {NOW - 1 * MIN, NOW - 2 * MIN};
    assert_true(td_otp_rate_check(&l, two, 2, NOW, &retry));
    /* Old deliveries do not count; exactly one window old is out. */
    int64_t old[] = {NOW - 10 * MIN, NOW - 11 * MIN, NOW - 60 * MIN, NOW - 1};
    assert_true(td_otp_rate_check(&l, old, 4, NOW, &retry));
    assert_true(td_otp_rate_check(&l, old, 4, NOW, NULL));
}

static void test_otp_rate_refuses(void **state)
{
    (void)state;
    td_otp_limit l;
    td_otp_limit_default(&l);
    int64_t retry = 0;
    /* Three in the window (unsorted): the oldest, 9 min ago, leaves in 1 min. */
    int64_t three[] = {NOW - 1 * MIN, NOW - 9 * MIN, NOW - 5 * MIN};
    assert_false(td_otp_rate_check(&l, three, 3, NOW, &retry));
    assert_int_equal(retry, 60);
    /* One window less one ms old: counted, 1 ms left, rounded up to 1 s. */
    int64_t edge[] = {NOW - 10 * MIN + 1, NOW, NOW};
    assert_false(td_otp_rate_check(&l, edge, 3, NOW, &retry));
    assert_int_equal(retry, 1);
    /* 1.5 s left rounds up to 2 s. */
    int64_t half[] = {NOW - 10 * MIN + 1500, NOW, NOW};
    assert_false(td_otp_rate_check(&l, half, 3, NOW, &retry));
    assert_int_equal(retry, 2);
    /* Five in the window: three must leave before one more is allowed, so
     * the wait is for the third oldest. */
    int64_t five[] = {NOW - 2 * MIN, NOW - 8 * MIN, NOW - 1 * MIN, NOW - 9 * MIN, NOW - 7 * MIN};
    assert_false(td_otp_rate_check(&l, five, 5, NOW, &retry));
    assert_int_equal(retry, 3 * 60);
    /* Equal times count each. */
    int64_t same[] = {NOW - 4 * MIN, NOW - 4 * MIN, NOW - 4 * MIN, NOW - 4 * MIN};
    assert_false(td_otp_rate_check(&l, same, 4, NOW, &retry));
    assert_int_equal(retry, 6 * 60);
    /* A delivery in the future (clock skew) counts too. */
    int64_t future[] = {NOW + 1 * MIN, NOW - 1 * MIN, NOW - 2 * MIN};
    assert_false(td_otp_rate_check(&l, future, 3, NOW, &retry));
    assert_int_equal(retry, 8 * 60);
    /* Once the oldest has left, the next one is allowed. */
    assert_true(td_otp_rate_check(&l, three, 3, NOW + 1 * MIN, &retry));
}

static void test_otp_rate_custom(void **state)
{
    (void)state;
    td_otp_limit l = {.max = 1, .window_ms = 30000};
    int64_t retry = 0;
    int64_t one[] = {NOW - 10000};
    assert_false(td_otp_rate_check(&l, one, 1, NOW, &retry));
    assert_int_equal(retry, 20);
    assert_true(td_otp_rate_check(&l, one, 1, NOW + 20000, &retry));
    /* A limit of zero refuses everything, for a whole window. */
    l.max = 0;
    assert_false(td_otp_rate_check(&l, NULL, 0, NOW, &retry));
    assert_int_equal(retry, 30);
}

/* ---- Luhn, PAN, expiry ---- */

/* An independent Luhn check digit, to build valid numbers of any length. */
static char check_digit(const char *body)
{
    int sum = 0;
    size_t n = strlen(body);
    for (size_t i = 0; i < n; i++) {
        int d = body[n - 1 - i] - '0';
        if (i % 2 == 0) { /* doubled: it will sit at an odd place from the right */
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

static void test_luhn(void **state)
{
    (void)state;
    static const char *valid[] = {"4111111111111111",
                                  "5555555555554444",
                                  "378282246310005",
                                  "6011111111111117",
                                  "79927398713",
                                  "4012888888881881",
                                  "0",
                                  "00",
                                  "18"};
    static const char *invalid[] = {"4111111111111112", "79927398710", "5555555555554440", "1", "10",
                                    "4111111111111121"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (!td_luhn_ok(valid[i])) fail_msg("%s should pass Luhn", valid[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (td_luhn_ok(invalid[i])) fail_msg("%s should fail Luhn", invalid[i]);
    assert_false(td_luhn_ok(""));
    assert_false(td_luhn_ok(NULL));
    assert_false(td_luhn_ok("4111 1111 1111 1111"));
    assert_false(td_luhn_ok("411111111111111a"));
    /* Every single-digit error is caught. */
    char pan[] = "4111111111111111";
    for (size_t i = 0; i < 16; i++) {
        char keep = pan[i];
        for (char c = '0'; c <= '9'; c++) {
            if (c == keep) continue;
            pan[i] = c;
            assert_false(td_luhn_ok(pan));
        }
        pan[i] = keep;
    }
}

static void test_pan_check(void **state)
{
    (void)state;
    char pan[32];
    for (size_t len = 2; len <= 24; len++) {
        memset(pan, '4', len - 1);
        for (size_t i = 1; i < len - 1; i++)
            pan[i] = (char)('0' + i % 10);
        pan[len - 1] = '\0';
        pan[len - 1] = check_digit(pan);
        pan[len] = '\0';
        assert_true(td_luhn_ok(pan));
        td_pan_status want = len >= 10 && len <= 19 ? TD_PAN_OK : TD_PAN_BAD_LENGTH;
        if (td_pan_check(pan) != want) fail_msg("%s: %s", pan, td_pan_status_name(td_pan_check(pan)));
    }
    assert_int_equal(td_pan_check("4111111111111111"), TD_PAN_OK);
    assert_int_equal(td_pan_check("4111111111111112"), TD_PAN_BAD_LUHN);
    assert_int_equal(td_pan_check("4111-1111-1111-1111"), TD_PAN_NOT_DIGITS);
    assert_int_equal(td_pan_check(" 4111111111111111"), TD_PAN_NOT_DIGITS);
    assert_int_equal(td_pan_check(""), TD_PAN_BAD_LENGTH);
    assert_int_equal(td_pan_check(NULL), TD_PAN_NOT_DIGITS);
    assert_string_equal(td_pan_status_name(TD_PAN_BAD_LUHN), "BAD_LUHN");
}

static void test_expiry_parse(void **state)
{
    (void)state;
    int m = 0, y = 0;
    assert_int_equal(td_expiry_parse("0125", &m, &y), 0);
    assert_int_equal(m, 1);
    assert_int_equal(y, 2025);
    assert_int_equal(td_expiry_parse("1299", &m, &y), 0);
    assert_int_equal(m, 12);
    assert_int_equal(y, 2099);
    assert_int_equal(td_expiry_parse("0900", &m, &y), 0);
    assert_int_equal(y, 2000);
    static const char *bad[] = {"0025", "1325", "125", "01255", "01a5", "1/25", "", " 125", "-125"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = y = 77;
        if (td_expiry_parse(bad[i], &m, &y) != -1) fail_msg("%s should not parse", bad[i]);
        assert_int_equal(m, 77);
    }
    assert_int_equal(td_expiry_parse(NULL, &m, &y), -1);
}

static void test_year_month(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        int y, m;
    } cases[] = {
        {0, 1970, 1},
        {1700000000000LL, 2023, 11},
        {951782400000LL, 2000, 2},    /* 2000-02-29 */
        {-1, 1969, 12},               /* 1969-12-31T23:59:59.999 */
        {1709251199999LL, 2024, 2},   /* the last ms of 2024-02-29 */
        {1709251200000LL, 2024, 3},   /* 2024-03-01 */
        {4102444800000LL, 2100, 1},   /* 2100 is not a leap year */
        {-62135596800000LL, 1, 1},    /* 0001-01-01 */
        {253402300799999LL, 9999, 12} /* the last ms of 9999 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int y = 0, m = 0;
        td_year_month(cases[i].ms, &y, &m);
        if (y != cases[i].y || m != cases[i].m)
            fail_msg("%lld: %d-%d, want %d-%d", (long long)cases[i].ms, y, m, cases[i].y, cases[i].m);
    }
}

static void test_reason_names(void **state)
{
    (void)state;
    static const char *names[] = {"NONE",
                                  "CARD_UNKNOWN",
                                  "CARD_DELETED",
                                  "CARD_SUSPENDED",
                                  "CARD_EXPIRED",
                                  "TOO_MANY_TOKENS",
                                  "TOO_MANY_ATTEMPTS",
                                  "LOW_WALLET_SCORE",
                                  "LOW_DEVICE_SCORE",
                                  "PHONE_MISMATCH",
                                  "EMAIL_MISMATCH",
                                  "NO_IDV_METHOD"};
    assert_int_equal(sizeof names / sizeof names[0], TD_RC__COUNT);
    for (int i = 0; i < TD_RC__COUNT; i++)
        assert_string_equal(td_decision_reason_name((td_decision_reason)i), names[i]);
    assert_string_equal(td_decision_reason_name(TD_RC__COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_default),
        cmocka_unit_test(test_policy_check),
        cmocka_unit_test(test_green),
        cmocka_unit_test(test_each_rule),
        cmocka_unit_test(test_unknown_card_ignores_its_state),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_red_rules_before_yellow),
        cmocka_unit_test(test_score_boundaries),
        cmocka_unit_test(test_counter_boundaries),
        cmocka_unit_test(test_counts_token),
        cmocka_unit_test(test_expiry_boundaries),
        cmocka_unit_test(test_phone_digits),
        cmocka_unit_test(test_phone_match),
        cmocka_unit_test(test_phone_rule_missing_data),
        cmocka_unit_test(test_email_match),
        cmocka_unit_test(test_mask_phone),
        cmocka_unit_test(test_mask_email),
        cmocka_unit_test(test_idv_all_methods),
        cmocka_unit_test(test_idv_missing_data_left_out),
        cmocka_unit_test(test_idv_fallback),
        cmocka_unit_test(test_idv_order_and_repeats),
        cmocka_unit_test(test_idv_config_check),
        cmocka_unit_test(test_idv_names),
        cmocka_unit_test(test_otp_rate_allows),
        cmocka_unit_test(test_otp_rate_refuses),
        cmocka_unit_test(test_otp_rate_custom),
        cmocka_unit_test(test_luhn),
        cmocka_unit_test(test_pan_check),
        cmocka_unit_test(test_expiry_parse),
        cmocka_unit_test(test_year_month),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
