/* cmd_sim.c — `tokenctl sim`: a network TSP and wallet simulator. It drives
 * each tokenization outcome of PRODUCT.md against a running tokend with the
 * issuer's network key, and prints every step: the request (PAN and OTP
 * masked), the answer, the digital card as the Issuer API shows it (with an
 * issuer key) and the outbox rows the step added (with the admin key). Each
 * step checks the answer the contract (docs/network.md) promises; the exit
 * status is 0 only if every step got it. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/util.h"

#define AUTH_MAX 320
#define SEEN_MAX 64

static const char SIM[] =
    "usage: tokenctl sim SCENARIO [--issuer ID] [--network-key KEY] [--issuer-key KEY]\n"
    "                    [--card-id ID | --pan PAN --expiry MMYY | --register [--pan PAN] [--expiry MMYY]]\n"
    "                    [--wallet APPLE_PAY] [--phone P] [--email E] [--duplicates] [--late] [--wait S]\n"
    "  A TSP/wallet simulator: drives one tokenization outcome against tokend and prints each\n"
    "  step (request, answer, the digital card from the Issuer API with an issuer key, the new\n"
    "  outbox rows with the admin key). SCENARIO is one of:\n"
    "    green               GREEN: the digital card is ACTIVE at once\n"
    "    yellow-otp          YELLOW, OTP on the first OTP method, IDV_SUCCESS event: ACTIVE\n"
    "    yellow-cancel       YELLOW, OTP, DELETE from the WALLET: DELETED, DIGITIZE FAILED\n"
    "                        CANCELED_BY_USER; then the same card is tokenized again\n"
    "    yellow-expiry       YELLOW and no ID&V: reminders, then DELETED, DIGITIZE FAILED\n"
    "                        STEP_UP_EXPIRED (with the admin key the policy's step-up session is\n"
    "                        made 2 s long for the run, and restored afterwards)\n"
    "    red                 RED (wallet score 1): DECLINED, and no lifecycle call can use it\n"
    "    enrollment-failure  GREEN, then DELETE_FROM_APP from the WALLET: DELETED\n"
    "    all                 every scenario above, in that order\n"
    "  --duplicates sends every request twice and checks the second answer is the first;\n"
    "  --late sends a RESUME after a delete and checks it is IGNORED.\n"
    "  The card: --card-id (the issuer's reference), or --pan and --expiry, or --register\n"
    "  (needs the issuer key): a new card per scenario, with a random test PAN unless --pan.\n"
    "  Keys: --network-key KEY, else TOKEND_NETWORK_KEY (required); --issuer-key KEY, else\n"
    "  TOKEND_ISSUER_KEY; the admin key as usual (--admin-key-file, TOKEND_ADMIN_KEY,\n"
    "  ./var/admin.key), used only if present. --issuer ID (else TOKEND_ISSUER_ID) is needed\n"
    "  with the issuer or admin key. --wait S bounds the wait for a step-up expiry (default 30).\n"
    "  Exit status: 0 every step got the expected answer, 1 otherwise, 2 usage, 3 transport.\n";

typedef struct {
    cli_ctx *ctx;
    char net[AUTH_MAX], iss[AUTH_MAX], adm[AUTH_MAX]; /* Authorization headers; "" = none */
    const char *issuer;
    const char *card_ref, *pan_arg, *expiry_arg, *wallet, *phone, *email;
    bool reg, dups, late;
    long wait_s;
    /* the card of the scenario being run */
    char card_id[49], pan[24], expiry[8];
    bool have_pan; /* tokenize with {"pan", "expiry"}, else {"cardId"} */
    bool pan_used; /* --pan went to the first card registered */
    char tag[16];
    int counter;
    int64_t outbox_after;
    bool outbox_ready;
    /* the step being run */
    int step, step_fails, fails;
    char *seen[SEEN_MAX]; /* outbox summaries for the current digital card, this step */
    int nseen;
} sim;

typedef struct {
    long status;
    char *raw;
    size_t len;
    json_t *json;
} answer;

static void answer_free(answer *a)
{
    json_decref(a->json);
    if (a->raw) sodium_memzero(a->raw, a->len);
    free(a->raw);
    memset(a, 0, sizeof *a);
}

/* ---- output ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void check(sim *s, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(sim *s, bool ok, const char *fmt, ...)
{
    if (ok) return;
    va_list ap;
    printf("    !! expected ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    s->step_fails++;
    s->fails++;
}

static void seen_clear(sim *s)
{
    for (int i = 0; i < s->nseen; i++)
        free(s->seen[i]);
    s->nseen = 0;
}

static void step_begin(sim *s, const char *title)
{
    s->step++;
    s->step_fails = 0;
    seen_clear(s);
    say("\n[%d] %s\n", s->step, title);
}

static void step_end(sim *s)
{
    say("    => %s\n", s->step_fails ? "UNEXPECTED" : "ok");
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static bool str_is(json_t *o, const char *key, const char *want)
{
    return !strcmp(str(o, key), want);
}

/* Replaces obj[key], a PAN, with stars and its last four digits. */
static void mask_pan(json_t *obj, const char *key)
{
    const char *pan = json_string_value(json_object_get(obj, key));
    if (!pan) return;
    char m[32];
    size_t n = strlen(pan), k = 0;
    for (; k + 4 < n && k < 20; k++)
        m[k] = '*';
    snprintf(m + k, sizeof m - k, "%s", n > 4 ? pan + n - 4 : "");
    json_object_set_new(obj, key, json_string(m));
}

/* The request as shown: the PAN becomes its last four digits, the OTP stars. */
static char *shown_body(json_t *body)
{
    json_t *c = json_deep_copy(body);
    mask_pan(c, "pan");
    mask_pan(json_object_get(c, "card"), "pan");
    if (json_object_get(c, "otp")) json_object_set_new(c, "otp", json_string("******"));
    char *t = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return t;
}

/* ---- HTTP ---- */

/* One call; the answer is printed (compact) and parsed. CLI_OK or CLI_TRANSPORT. */
static int sim_send(sim *s, const char *method, const char *path, const char *auth, json_t *body, answer *a)
{
    cli_buf u;
    memset(a, 0, sizeof *a);
    cli_buf_url(&u, s->ctx, path);
    if (u.overflow) {
        fputs("tokenctl: sim: a URL is too long\n", stderr);
        return CLI_TRANSPORT;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body) {
        char *shown = shown_body(body);
        say("    -> %s %s %s\n", method, path, shown ? shown : "");
        free(shown);
    } else {
        say("    -> %s %s\n", method, path);
    }
    cli_call call = {
        .method = method, .url = u.s, .auth = auth, .body = text, .content_type = text ? "application/json" : NULL};
    cli_resp r;
    int rc = cli_http(s->ctx, &call, &r);
    if (text) sodium_memzero(text, strlen(text));
    free(text);
    if (rc != CLI_OK) return rc;
    a->status = r.status;
    a->raw = r.body;
    a->len = r.len;
    a->json = json_loadb(r.body, r.len, 0, NULL);
    say("    <- %ld %.*s\n", r.status, (int)(r.len > 2000 ? 2000 : r.len), r.body);
    return CLI_OK;
}

/* ---- ids, times, cards ---- */

static void next_id(sim *s, const char *kind, char *out, size_t cap)
{
    snprintf(out, cap, "sim-%s-%s%d", s->tag, kind, ++s->counter);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* A random 16-digit test PAN starting with 4 that passes the Luhn check. */
static void random_pan(char out[17])
{
    int sum = 0;
    out[0] = '4';
    for (int i = 1; i < 15; i++)
        out[i] = (char)('0' + randombytes_uniform(10));
    out[16] = 0;
    /* Luhn over the 15 digits with the check digit at position 15. */
    for (int i = 14, dbl = 1; i >= 0; i--, dbl = !dbl) {
        int d = out[i] - '0';
        if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    out[15] = (char)('0' + (10 - sum % 10) % 10);
}

static void default_expiry(char out[8])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, 8, "12%02d", (tm.tm_year + 1900 + 3) % 100);
}

static void issuer_path(const sim *s, char *out, size_t cap, const char *rest)
{
    snprintf(out, cap, "/banking/v1/issuers/%s%s", s->issuer, rest);
}

/* ---- what the issuer sees ---- */

/* The digital card through the Issuer API (issuer key only); checks its state. */
static int show_dcard(sim *s, const char *dc, const char *want_state)
{
    if (!s->iss[0] || !dc[0]) return CLI_OK;
    char path[256], rest[160];
    snprintf(rest, sizeof rest, "/digitalCards/%s", dc);
    issuer_path(s, path, sizeof path, rest);
    answer a;
    cli_buf u;
    cli_buf_url(&u, s->ctx, path);
    cli_call call = {.method = "GET", .url = u.s, .auth = s->iss};
    cli_resp r;
    int rc = cli_http(s->ctx, &call, &r);
    if (rc != CLI_OK) return rc;
    a.status = r.status;
    a.raw = r.body;
    a.len = r.len;
    a.json = json_loadb(r.body, r.len, 0, NULL);
    if (a.status == 200 && a.json) {
        char *sb = json_dumps(json_object_get(a.json, "suspendedBy"), JSON_COMPACT | JSON_ENCODE_ANY);
        say("    issuer view: %s %s suspendedBy=%s sequence=%lld decision=%s\n", dc, str(a.json, "state"),
            sb ? sb : "?", (long long)json_integer_value(json_object_get(a.json, "sequence")), str(a.json, "decision"));
        free(sb);
        if (want_state) check(s, str_is(a.json, "state", want_state), "the digital card to be %s", want_state);
    } else {
        say("    issuer view: HTTP %ld %.*s\n", a.status, (int)a.len, a.raw);
        check(s, false, "GET %s to answer 200", path);
    }
    answer_free(&a);
    return CLI_OK;
}

/* "ISSUER DIGITIZE FAILED CANCELED_BY_USER" or "USER OTP". */
static void summarize(json_t *row, char *out, size_t cap)
{
    if (str_is(row, "channel", "USER"))
        snprintf(out, cap, "USER %s", str(row, "message"));
    else
        snprintf(out, cap, "%s %s %s%s%s", str(row, "channel"), str(row, "operation"), str(row, "status"),
                 str(row, "errorCode")[0] ? " " : "", str(row, "errorCode"));
}

/* Reads the issuer's outbox after the cursor. With print, shows the rows;
 * rows of dc are remembered for expect_rows. Returns how many rows of dc. */
static int outbox_poll(sim *s, const char *dc, bool print, int *n_dc)
{
    *n_dc = 0;
    if (!s->adm[0]) return CLI_OK;
    for (;;) {
        char path[256];
        snprintf(path, sizeof path, "/admin/v1/issuers/%s/outbox?after=%lld&limit=100", s->issuer,
                 (long long)s->outbox_after);
        cli_buf u;
        cli_buf_url(&u, s->ctx, path);
        cli_call call = {.method = "GET", .url = u.s, .auth = s->adm};
        cli_resp r;
        int rc = cli_http(s->ctx, &call, &r);
        if (rc != CLI_OK) return rc;
        json_t *v = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
        json_t *rows = json_object_get(v, "outbox");
        if (!json_is_array(rows)) {
            say("    outbox: HTTP %ld %.*s\n", r.status, (int)r.len, r.body);
            check(s, false, "the outbox listing to answer 200 {\"outbox\": [...]}");
            json_decref(v);
            cli_resp_free(&r);
            return CLI_OK;
        }
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            json_int_t id = json_integer_value(json_object_get(row, "id"));
            if (id > s->outbox_after) s->outbox_after = id;
            char sum[160];
            summarize(row, sum, sizeof sum);
            bool mine = dc && str_is(row, "digitalCardId", dc);
            if (print)
                say("    outbox #%lld %s (digitalCard %s, sequence %lld, state %s)\n", (long long)id, sum,
                    str(row, "digitalCardId"), (long long)json_integer_value(json_object_get(row, "sequence")),
                    str(row, "state"));
            if (mine) {
                (*n_dc)++;
                if (s->nseen < SEEN_MAX) s->seen[s->nseen++] = strdup(sum);
            }
        }
        size_t n = json_array_size(rows);
        json_decref(v);
        cli_resp_free(&r);
        if (n < 100) break;
    }
    return CLI_OK;
}

/* Moves the outbox cursor past everything already there. */
static int outbox_skip(sim *s)
{
    int n;
    if (s->outbox_ready) return CLI_OK;
    s->outbox_ready = true;
    return outbox_poll(s, NULL, false, &n);
}

/* Checks that the rows seen this step include each expected summary (a
 * summary may add an errorCode to what is expected). NULL-terminated. */
static const char *const NO_ROWS[] = {"-", NULL};

static void expect_rows(sim *s, const char *const *want)
{
    if (!s->adm[0]) return;
    if (want == NO_ROWS) {
        check(s, s->nseen == 0, "no new outbox row (got %d)", s->nseen);
        return;
    }
    for (; *want; want++) {
        bool found = false;
        size_t n = strlen(*want);
        for (int i = 0; i < s->nseen && !found; i++)
            found = !strncmp(s->seen[i], *want, n) && (s->seen[i][n] == 0 || s->seen[i][n] == ' ');
        check(s, found, "an outbox row %s", *want);
    }
}

/* The issuer-side picture after a step: the card, then the new outbox rows. */
static int observe(sim *s, const char *dc, const char *state, const char *const *rows)
{
    int rc = show_dcard(s, dc, state), n;
    if (rc == CLI_OK) rc = outbox_poll(s, dc, true, &n);
    if (rc == CLI_OK && rows) expect_rows(s, rows);
    return rc;
}

/* Sends the same request again (--duplicates): the same answer, nothing new owed. */
static int duplicate(sim *s, const char *path, json_t *body, const answer *first, const char *dc, bool bytes)
{
    if (!s->dups) return CLI_OK;
    /* What the first request owed, before the duplicate is sent. */
    int n = 0, rc = outbox_poll(s, dc, true, &n);
    if (rc != CLI_OK) return rc;
    say("    (duplicate)\n");
    answer b;
    rc = sim_send(s, "POST", path, s->net, body, &b);
    if (rc != CLI_OK) return rc;
    check(s, b.status == first->status, "the duplicate to get the status %ld", first->status);
    if (bytes)
        check(s, b.len == first->len && !memcmp(b.raw, first->raw, b.len),
              "the duplicate to get the same answer, byte for byte");
    else
        check(s, b.json && first->json && json_equal(b.json, first->json), "the duplicate to get the same answer");
    answer_free(&b);
    rc = outbox_poll(s, dc, true, &n);
    if (rc == CLI_OK && s->adm[0]) check(s, n == 0, "no new outbox row after the duplicate (got %d)", n);
    return rc;
}

/* ---- the network requests ---- */

typedef struct {
    char dc[65];
    char decision[16];
    char otp_method[32];
} tokenized;

/* POST /network/v1/tokenizations with the given wallet score; checks the decision. */
static int tokenize(sim *s, int wallet_score, const char *want, const char *want_reason, tokenized *t)
{
    char corr[64];
    next_id(s, "c", corr, sizeof corr);
    memset(t, 0, sizeof *t);
    json_t *card = s->have_pan ? json_pack("{s:s, s:s}", "pan", s->pan, "expiry", s->expiry)
                               : json_pack("{s:s}", "cardId", s->card_id);
    if (!s->have_pan && s->expiry[0]) json_object_set_new(card, "expiry", json_string(s->expiry));
    json_t *body = json_pack("{s:s, s:o, s:s, s:s, s:s, s:b, s:{s:s, s:s, s:s, s:s}, s:{s:i, s:i}}", "correlationId",
                             corr, "card", card, "walletProviderId", s->wallet, "tokenRequestorId", "40010030273",
                             "tokenStorageId", "SE-01", "isPrimary", 1, "device", "id", "sim-device-1", "type", "PHONE",
                             "name", "Simulated phone", "os", "iOS", "scores", "wallet", wallet_score, "device", 5);
    if (!body) return cli_usage_error(SIM, "arguments must be valid UTF-8 text");
    if (s->phone || s->email) {
        json_t *eu = json_object();
        if (s->phone) json_object_set_new(eu, "phone", json_string(s->phone));
        if (s->email) json_object_set_new(eu, "email", json_string(s->email));
        json_object_set_new(body, "endUser", eu);
    }
    answer a;
    int rc = sim_send(s, "POST", "/network/v1/tokenizations", s->net, body, &a);
    if (rc != CLI_OK) {
        json_decref(body);
        return rc;
    }
    check(s, a.status == 200, "HTTP 200");
    td_strlcpy(t->dc, str(a.json, "digitalCardId"), sizeof t->dc);
    td_strlcpy(t->decision, str(a.json, "decision"), sizeof t->decision);
    check(s, t->dc[0] != 0, "a digitalCardId");
    check(s, str(a.json, "operationId")[0] != 0, "an operationId");
    if (want)
        check(s, !strcmp(t->decision, want), "the decision %s (got %s)", want, t->decision);
    else
        check(s, strcmp(t->decision, "RED") && t->decision[0], "a decision other than RED (got %s)", t->decision);
    if (want_reason)
        check(s, str_is(a.json, "reason", want_reason), "the reason %s (got %s)", want_reason, str(a.json, "reason"));
    json_t *methods = json_object_get(a.json, "idvMethods");
    if (!strcmp(t->decision, "YELLOW")) {
        check(s, json_array_size(methods) > 0, "idvMethods with a YELLOW decision");
        size_t i;
        json_t *m;
        json_array_foreach(methods, i, m)
        {
            const char *type = str(m, "type");
            if (!t->otp_method[0] && (!strcmp(type, "OTP_SMS") || !strcmp(type, "OTP_EMAIL")))
                td_strlcpy(t->otp_method, str(m, "id"), sizeof t->otp_method);
        }
    } else {
        check(s, methods == NULL, "no idvMethods with a %s decision", t->decision);
    }
    if (s->have_pan) check(s, !strstr(a.raw, s->pan), "an answer without the PAN");
    rc = duplicate(s, "/network/v1/tokenizations", body, &a, t->dc, false);
    answer_free(&a);
    json_decref(body);
    return rc;
}

/* POST /network/v1/events; checks result (and state when given). */
static int event(sim *s, const char *dc, const char *type, const char *source, const char *want_result,
                 const char *want_state)
{
    char id[64], when[40];
    next_id(s, "e", id, sizeof id);
    td_iso8601_ms(td_now_ms(), when, sizeof when);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "eventId", id, "digitalCardId", dc, "type", type, "source",
                             source, "eventTime", when);
    answer a;
    int rc = sim_send(s, "POST", "/network/v1/events", s->net, body, &a);
    if (rc == CLI_OK) {
        check(s, a.status == 200, "HTTP 200");
        check(s, str_is(a.json, "eventId", id) && str_is(a.json, "digitalCardId", dc),
              "the answer to name the event and the digital card");
        check(s, str_is(a.json, "result", want_result), "the result %s (got %s)", want_result, str(a.json, "result"));
        if (want_state)
            check(s, str_is(a.json, "state", want_state), "the state %s (got %s)", want_state, str(a.json, "state"));
        rc = duplicate(s, "/network/v1/events", body, &a, dc, true);
    }
    answer_free(&a);
    json_decref(body);
    return rc;
}

/* POST /network/v1/digitalCards/{dc}/otp on the first OTP method offered. */
static int deliver_otp(sim *s, const tokenized *t)
{
    if (!t->otp_method[0]) {
        say("    no OTP method was offered (no phone or email registered): nothing to deliver\n");
        return CLI_OK;
    }
    char otp[8], path[160];
    for (int i = 0; i < 6; i++)
        otp[i] = (char)('0' + randombytes_uniform(10));
    otp[6] = 0;
    snprintf(path, sizeof path, "/network/v1/digitalCards/%s/otp", t->dc);
    json_t *body = json_pack("{s:s, s:s}", "methodId", t->otp_method, "otp", otp);
    answer a;
    int rc = sim_send(s, "POST", path, s->net, body, &a);
    if (rc == CLI_OK) {
        check(s, a.status == 202, "HTTP 202");
        check(s, str_is(a.json, "status", "QUEUED"), "status QUEUED");
        check(s, str_is(a.json, "methodId", t->otp_method), "the methodId %s", t->otp_method);
        check(s, !strstr(a.raw, otp), "an answer without the OTP");
    }
    answer_free(&a);
    json_decref(body);
    sodium_memzero(otp, sizeof otp);
    return rc;
}

/* ---- the card of a scenario ---- */

static int prepare_card(sim *s)
{
    s->have_pan = false;
    s->card_id[0] = s->pan[0] = s->expiry[0] = 0;
    if (s->expiry_arg) td_strlcpy(s->expiry, s->expiry_arg, sizeof s->expiry);
    if (!s->reg) {
        if (s->card_ref) {
            td_strlcpy(s->card_id, s->card_ref, sizeof s->card_id);
        } else {
            td_strlcpy(s->pan, s->pan_arg, sizeof s->pan);
            s->have_pan = true;
        }
        return CLI_OK;
    }
    step_begin(s, "the issuer registers a card");
    next_id(s, "card", s->card_id, sizeof s->card_id);
    if (s->pan_arg && !s->pan_used) {
        td_strlcpy(s->pan, s->pan_arg, sizeof s->pan);
        s->pan_used = true;
    } else {
        random_pan(s->pan);
    }
    if (!s->expiry[0]) default_expiry(s->expiry);
    s->have_pan = true;
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "cardId", s->card_id, "consumerId", "sim-consumer",
                             "pan", s->pan, "expiry", s->expiry, "phone", s->phone ? s->phone : "+33 6 12 34 56 78",
                             "email", s->email ? s->email : "jane@example.com");
    if (!body) return cli_usage_error(SIM, "arguments must be valid UTF-8 text");
    char path[128];
    issuer_path(s, path, sizeof path, "/cards");
    answer a;
    int rc = sim_send(s, "POST", path, s->iss, body, &a);
    json_decref(body);
    if (rc != CLI_OK) return rc;
    check(s, a.status == 201, "HTTP 201");
    check(s, str_is(a.json, "cardId", s->card_id), "the card view of %s", s->card_id);
    check(s, !strstr(a.raw, s->pan), "an answer without the PAN");
    answer_free(&a);
    step_end(s);
    return CLI_OK;
}

/* ---- the scenarios ---- */

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        int rc_ = (x);                                                                                                 \
        if (rc_ != CLI_OK) return rc_;                                                                                 \
    } while (0)

static int late_resume(sim *s, const char *dc)
{
    if (!s->late) return CLI_OK;
    step_begin(s, "late: a RESUME from the TSP after the delete is recorded and IGNORED");
    TRY(event(s, dc, "RESUME", "TSP", "IGNORED", "DELETED"));
    TRY(observe(s, dc, "DELETED", NO_ROWS));
    step_end(s);
    return CLI_OK;
}

static int sc_green(sim *s)
{
    tokenized t;
    step_begin(s, "tokenization with good scores: GREEN");
    TRY(tokenize(s, 5, "GREEN", NULL, &t));
    static const char *const rows[] = {"ISSUER DIGITIZE SUCCESSFUL", "USER ACTIVATION", NULL};
    TRY(observe(s, t.dc, "ACTIVE", rows));
    step_end(s);
    return CLI_OK;
}

/* YELLOW then the OTP: the common start of the step-up scenarios. */
static int yellow_start(sim *s, tokenized *t, bool otp)
{
    step_begin(s, "tokenization with a middling wallet score: YELLOW, step-up");
    TRY(tokenize(s, 3, "YELLOW", NULL, t));
    static const char *const rows[] = {"ISSUER DIGITIZE PENDING", NULL};
    TRY(observe(s, t->dc, "PENDING_IDV", rows));
    step_end(s);
    if (!otp || strcmp(t->decision, "YELLOW")) return CLI_OK;
    step_begin(s, "OTP delivery on the first OTP method offered");
    TRY(deliver_otp(s, t));
    static const char *const otp_rows[] = {"USER OTP", NULL};
    TRY(observe(s, t->dc, "PENDING_IDV", t->otp_method[0] ? otp_rows : NULL));
    step_end(s);
    return CLI_OK;
}

static int sc_yellow_otp(sim *s)
{
    tokenized t;
    TRY(yellow_start(s, &t, true));
    step_begin(s, "the TSP validated the OTP: IDV_SUCCESS event, the card is ACTIVE");
    TRY(event(s, t.dc, "IDV_SUCCESS", "TSP", "APPLIED", "ACTIVE"));
    static const char *const rows[] = {"ISSUER DIGITIZE SUCCESSFUL", "USER ACTIVATION", NULL};
    TRY(observe(s, t.dc, "ACTIVE", rows));
    step_end(s);
    return CLI_OK;
}

static int sc_yellow_cancel(sim *s)
{
    tokenized t, again;
    TRY(yellow_start(s, &t, true));
    step_begin(s, "the end user deletes the pending card in the wallet: DELETE from the WALLET");
    TRY(event(s, t.dc, "DELETE", "WALLET", "APPLIED", "DELETED"));
    static const char *const rows[] = {"ISSUER DIGITIZE FAILED CANCELED_BY_USER", "USER CANCELLATION", NULL};
    TRY(observe(s, t.dc, "DELETED", rows));
    step_end(s);
    TRY(late_resume(s, t.dc));
    step_begin(s, "re-enrolment: the same card is tokenized again");
    TRY(tokenize(s, 5, NULL, NULL, &again));
    check(s, strcmp(again.dc, t.dc) != 0, "a new digital card");
    TRY(observe(s, again.dc, !strcmp(again.decision, "GREEN") ? "ACTIVE" : "PENDING_IDV", NULL));
    step_end(s);
    return CLI_OK;
}

/* Changes the issuer's stepUp policy; *old gets the one in effect. */
static int set_stepup(sim *s, json_t *stepup, json_t **old)
{
    char path[128];
    snprintf(path, sizeof path, "/admin/v1/issuers/%s/card-policy", s->issuer);
    answer a;
    if (old) {
        TRY(sim_send(s, "GET", path, s->adm, NULL, &a));
        check(s, a.status == 200, "HTTP 200");
        *old = json_incref(json_object_get(a.json, "stepUp"));
        answer_free(&a);
    }
    json_t *body = json_pack("{s:O}", "stepUp", stepup);
    int rc = sim_send(s, "PUT", path, s->adm, body, &a);
    json_decref(body);
    if (rc == CLI_OK) check(s, a.status == 200, "HTTP 200");
    answer_free(&a);
    return rc;
}

static int sc_yellow_expiry(sim *s)
{
    json_t *old = NULL;
    if (s->adm[0]) {
        step_begin(s, "admin: a short step-up session (reminder after 1 s, session 2 s)");
        json_t *shortp = json_pack("{s:i, s:i, s:i, s:i}", "firstReminderAfterSeconds", 1, "reminderEverySeconds", 1,
                                   "maxReminders", 1, "sessionSeconds", 2);
        int rc = set_stepup(s, shortp, &old);
        json_decref(shortp);
        if (rc != CLI_OK) return rc;
        step_end(s);
    } else {
        say("\n(no admin key: the issuer's own step-up session applies; waiting up to %ld s)\n", s->wait_s);
    }
    tokenized t;
    int rc = yellow_start(s, &t, false);
    if (rc == CLI_OK && !strcmp(t.decision, "YELLOW")) {
        step_begin(s, "no ID&V: reminders, then the session expires and tokend deletes the card");
        int64_t deadline = td_now_ms() + s->wait_s * 1000;
        bool gone = false;
        while (rc == CLI_OK && !gone && td_now_ms() < deadline) {
            int n;
            sleep_ms(200);
            rc = outbox_poll(s, t.dc, true, &n);
            for (int i = 0; i < s->nseen; i++)
                if (!strncmp(s->seen[i], "ISSUER DIGITIZE FAILED", 22)) gone = true;
            if (!s->adm[0] && rc == CLI_OK) {
                /* Only the issuer view can tell. */
                char path[256], rest[160];
                snprintf(rest, sizeof rest, "/digitalCards/%s", t.dc);
                issuer_path(s, path, sizeof path, rest);
                cli_buf u;
                cli_buf_url(&u, s->ctx, path);
                cli_call call = {.method = "GET", .url = u.s, .auth = s->iss};
                cli_resp r;
                rc = cli_http(s->ctx, &call, &r);
                if (rc == CLI_OK) {
                    json_t *v = json_loadb(r.body, r.len, 0, NULL);
                    gone = str_is(v, "state", "DELETED");
                    json_decref(v);
                    cli_resp_free(&r);
                }
            }
        }
        if (rc == CLI_OK) {
            check(s, gone, "the step-up session to expire within %ld s", s->wait_s);
            static const char *const rows[] = {"USER REMINDER", "ISSUER DIGITIZE FAILED STEP_UP_EXPIRED", NULL};
            rc = observe(s, t.dc, "DELETED", rows);
            step_end(s);
        }
    }
    if (old) {
        step_begin(s, "admin: the step-up policy restored");
        int rc2 = set_stepup(s, old, NULL);
        if (rc == CLI_OK) rc = rc2;
        step_end(s);
    }
    json_decref(old);
    return rc;
}

static int sc_red(sim *s)
{
    tokenized t;
    step_begin(s, "tokenization with a wallet score of 1: RED");
    TRY(tokenize(s, 1, "RED", "LOW_WALLET_SCORE", &t));
    static const char *const rows[] = {"ISSUER DIGITIZE FAILED DECLINED", NULL};
    TRY(observe(s, t.dc, "DECLINED", rows));
    step_end(s);
    if (!s->iss[0] || !t.dc[0]) return CLI_OK;
    step_begin(s, "the issuer tries to suspend the declined card: 409 NOT_ALLOWED_IN_STATE");
    char path[256], rest[160];
    snprintf(rest, sizeof rest, "/digitalCards/%s/operations:suspend", t.dc);
    issuer_path(s, path, sizeof path, rest);
    answer a;
    TRY(sim_send(s, "POST", path, s->iss, NULL, &a));
    check(s, a.status == 409 && str_is(a.json, "errorCode", "NOT_ALLOWED_IN_STATE"), "409 NOT_ALLOWED_IN_STATE");
    answer_free(&a);
    TRY(observe(s, t.dc, "DECLINED", NO_ROWS));
    step_end(s);
    return CLI_OK;
}

static int sc_enrollment_failure(sim *s)
{
    tokenized t;
    step_begin(s, "tokenization with good scores: GREEN");
    TRY(tokenize(s, 5, "GREEN", NULL, &t));
    static const char *const rows[] = {"ISSUER DIGITIZE SUCCESSFUL", NULL};
    TRY(observe(s, t.dc, "ACTIVE", rows));
    step_end(s);
    step_begin(s, "the end user removes the card from the wallet app: DELETE_FROM_APP from the WALLET");
    TRY(event(s, t.dc, "DELETE_FROM_APP", "WALLET", "APPLIED", "DELETED"));
    static const char *const del_rows[] = {"ISSUER DELETE_FROM_APP SUCCESSFUL", NULL};
    TRY(observe(s, t.dc, "DELETED", del_rows));
    step_end(s);
    return late_resume(s, t.dc);
}

typedef struct {
    const char *name;
    int (*fn)(sim *);
} scenario;

static const scenario SCENARIOS[] = {
    {"green", sc_green},
    {"yellow-otp", sc_yellow_otp},
    {"yellow-cancel", sc_yellow_cancel},
    {"yellow-expiry", sc_yellow_expiry},
    {"red", sc_red},
    {"enrollment-failure", sc_enrollment_failure},
};
#define N_SCENARIOS (sizeof SCENARIOS / sizeof SCENARIOS[0])

static int run_one(sim *s, const scenario *sc)
{
    say("%s== sim %s ==\n", s->step ? "\n" : "", sc->name);
    int fails_before = s->fails;
    int rc = prepare_card(s);
    if (rc == CLI_OK) rc = outbox_skip(s);
    if (rc == CLI_OK) rc = sc->fn(s);
    seen_clear(s);
    if (rc != CLI_OK) return rc;
    int n = s->fails - fails_before;
    say("\n== sim %s: %s ==\n", sc->name, n ? "UNEXPECTED ANSWERS" : "every step got the expected answer");
    return CLI_OK;
}

static int setup_keys(sim *s, const char *net_key, const char *iss_key)
{
    int rc = cli_key_auth(net_key, "TOKEND_NETWORK_KEY", "--network-key", s->net, sizeof s->net, true);
    if (rc == CLI_OK) rc = cli_key_auth(iss_key, "TOKEND_ISSUER_KEY", "--issuer-key", s->iss, sizeof s->iss, false);
    if (rc != CLI_OK) return rc;
    /* The admin key only if one is there: --admin-key-file, TOKEND_ADMIN_KEY or ./var/admin.key. */
    const char *env = getenv("TOKEND_ADMIN_KEY");
    if (s->ctx->admin_key_file || (env && *env) || access("./var/admin.key", R_OK) == 0)
        rc = cli_admin_auth(s->ctx, s->adm, sizeof s->adm);
    return rc;
}

int cmd_sim(cli_ctx *ctx, int argc, char **argv)
{
    sim s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    const char *pos[1], *net_key = NULL, *iss_key = NULL, *issuer = NULL, *reg = NULL, *dups = NULL, *late = NULL,
                        *wait = NULL;
    s.wallet = "APPLE_PAY";
    cli_opt opts[] = {{"--issuer", 1, &issuer},      {"--network-key", 1, &net_key},
                      {"--issuer-key", 1, &iss_key}, {"--card-id", 1, &s.card_ref},
                      {"--pan", 1, &s.pan_arg},      {"--expiry", 1, &s.expiry_arg},
                      {"--register", 0, &reg},       {"--wallet", 1, &s.wallet},
                      {"--phone", 1, &s.phone},      {"--email", 1, &s.email},
                      {"--duplicates", 0, &dups},    {"--late", 0, &late},
                      {"--wait", 1, &wait},          {NULL, 0, NULL}};
    cli_spec spec = {SIM, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    s.reg = reg != NULL;
    s.dups = dups != NULL;
    s.late = late != NULL;
    s.wait_s = 30;
    if (wait) {
        int64_t w;
        if (td_parse_i64(wait, &w) || w < 1 || w > 3600) return cli_usage_error(SIM, "--wait must be 1..3600 seconds");
        s.wait_s = (long)w;
    }
    const scenario *chosen = NULL;
    bool all = !strcmp(pos[0], "all");
    for (size_t i = 0; i < N_SCENARIOS; i++)
        if (!strcmp(SCENARIOS[i].name, pos[0])) chosen = &SCENARIOS[i];
    if (!chosen && !all) return cli_usage_error(SIM, "unknown scenario '%.40s'", pos[0]);
    if (s.card_ref && (s.pan_arg || s.reg)) return cli_usage_error(SIM, "--card-id excludes --pan and --register");
    if (!s.reg && !s.card_ref && !(s.pan_arg && s.expiry_arg))
        return cli_usage_error(SIM, "the card is missing: --card-id ID, --pan PAN --expiry MMYY, or --register");
    if (!*s.wallet || strlen(s.wallet) > 128) return cli_usage_error(SIM, "--wallet must be 1..128 characters");
    if (sodium_init() < 0) {
        fputs("tokenctl: libsodium failed to initialise\n", stderr);
        return CLI_TRANSPORT;
    }
    if ((rc = setup_keys(&s, net_key, iss_key)) != CLI_OK) goto out;
    s.issuer = cli_issuer_id(issuer);
    if ((s.iss[0] || s.adm[0]) && !s.issuer) {
        rc = cli_usage_error(SIM,
                             "with the issuer or admin key, the issuer id is needed: --issuer ID or TOKEND_ISSUER_ID");
        goto out;
    }
    if (s.issuer && (strlen(s.issuer) != 10 || !td_is_id_chars(s.issuer, 10, 10, "_-"))) {
        rc = cli_usage_error(SIM, "--issuer must be exactly 10 characters of [A-Za-z0-9_-]");
        goto out;
    }
    if (s.reg && !s.iss[0]) {
        rc = cli_usage_error(SIM, "--register needs the issuer key (--issuer-key or TOKEND_ISSUER_KEY)");
        goto out;
    }
    bool expiry_wanted = all || !strcmp(pos[0], "yellow-expiry");
    if (expiry_wanted && !s.iss[0] && !s.adm[0]) {
        rc = cli_usage_error(SIM, "yellow-expiry needs the issuer key or the admin key to watch the card");
        goto out;
    }
    for (int i = 0; i < 6; i++)
        s.tag[i] = "abcdefghijkmnpqrstuvwxyz23456789"[randombytes_uniform(32)];
    s.tag[6] = 0;
    if (all) {
        for (size_t i = 0; i < N_SCENARIOS && rc == CLI_OK; i++)
            rc = run_one(&s, &SCENARIOS[i]);
    } else {
        rc = run_one(&s, chosen);
    }
    if (rc == CLI_OK) {
        say("\n%d step%s, %d unexpected answer%s\n", s.step, s.step == 1 ? "" : "s", s.fails, s.fails == 1 ? "" : "s");
        rc = s.fails ? CLI_HTTP_ERROR : CLI_OK;
    }
out:
    cli_forget(s.net, sizeof s.net);
    cli_forget(s.iss, sizeof s.iss);
    cli_forget(s.adm, sizeof s.adm);
    sodium_memzero(s.pan, sizeof s.pan);
    return rc;
}
