/* decision.c — the tokenization decision rules, the ID&V method list with
 * masked contact data, the OTP delivery rate check and the card data checks.
 * Pure: every input, including the time, comes in as an argument. */
#include "core/decision.h"

#include <string.h>
#include <strings.h>

#include "util/util.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const RC_NAMES[] = {"NONE",
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
static const char *const IDV_NAMES[] = {"OTP_SMS", "OTP_EMAIL", "ISSUER_APP", "CUSTOMER_SERVICE"};
static const char *const IDV_IDS[] = {"otp-sms", "otp-email", "issuer-app", "customer-service"};
static const char *const PAN_NAMES[] = {"OK", "NOT_DIGITS", "BAD_LENGTH", "BAD_LUHN"};

static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool blank(const char *s)
{
    return !s || !*s;
}

const char *td_decision_reason_name(td_decision_reason r)
{
    return name_of(RC_NAMES, COUNT(RC_NAMES), (int)r);
}

/* ---- policy ---- */

void td_decision_policy_default(td_decision_policy *p)
{
    p->max_active_tokens = 10;
    p->max_attempts_per_hour = 10;
    p->red_below = 2;
    p->yellow_below = 4;
    p->phone_mismatch = TD_VERDICT_YELLOW;
    p->email_mismatch = TD_VERDICT_YELLOW;
    p->phone_match_digits = 9;
}

static bool verdict_ok(td_verdict v)
{
    return (int)v >= 0 && v < TD_VERDICT__COUNT;
}

int td_decision_policy_check(const td_decision_policy *p)
{
    if (p->max_active_tokens < 1 || p->max_attempts_per_hour < 1) return -1;
    if (p->red_below < 0 || p->red_below > p->yellow_below || p->yellow_below > 6) return -1;
    if (p->phone_match_digits < 0 || p->phone_match_digits > 15) return -1;
    if (!verdict_ok(p->phone_mismatch) || !verdict_ok(p->email_mismatch)) return -1;
    return 0;
}

/* ---- phone and email comparison ---- */

int td_phone_digits(const char *phone, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0) return -1;
    for (const char *s = phone; s && *s; s++) {
        if (!is_digit(*s)) continue;
        if (n + 1 >= cap) {
            out[0] = '\0';
            return -1;
        }
        out[n++] = *s;
    }
    out[n] = '\0';
    return (int)n;
}

/* A phone longer than this many characters is not a phone. */
#define PHONE_TEXT_MAX 64
/* The fewest trailing digits two numbers are matched on. */
#define PHONE_SUFFIX_MIN 7

bool td_phone_match(const char *a, const char *b, int n)
{
    char da[PHONE_TEXT_MAX], db[PHONE_TEXT_MAX];
    int la = td_phone_digits(a, da, sizeof da), lb = td_phone_digits(b, db, sizeof db);
    if (la <= 0 || lb <= 0) return false;
    /* The last n digits absorb the ways one number is written: +33 6…,
     * 0033 6…, 06… all end in the same nine digits. A shorter number (the
     * national form in an 8-digit plan: +45 12345678 vs 12345678) sets a
     * shorter suffix, but never under PHONE_SUFFIX_MIN digits. */
    int k = n;
    if (k > la) k = la;
    if (k > lb) k = lb;
    if (n > 0 && k >= PHONE_SUFFIX_MIN) return memcmp(da + la - k, db + lb - k, (size_t)k) == 0;
    return la == lb && memcmp(da, db, (size_t)la) == 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The part of s without surrounding blanks: start and length. */
static void trim(const char *s, const char **start, size_t *len)
{
    size_t n = strlen(s);
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

bool td_email_match(const char *a, const char *b)
{
    const char *sa, *sb;
    size_t la, lb;
    if (!a || !b) return false;
    trim(a, &sa, &la);
    trim(b, &sb, &lb);
    return la > 0 && la == lb && strncasecmp(sa, sb, la) == 0;
}

/* ---- the decision ---- */

static td_verdict score_verdict(const td_decision_policy *p, int score)
{
    if (score <= 0) return TD_VERDICT_GREEN; /* not given: nothing to judge */
    if (score < p->red_below) return TD_VERDICT_RED;
    if (score < p->yellow_below) return TD_VERDICT_YELLOW;
    return TD_VERDICT_GREEN;
}

static td_verdict red_if(bool c)
{
    return c ? TD_VERDICT_RED : TD_VERDICT_GREEN;
}

/* One rule's verdict (GREEN = did not fire). The card rules other than
 * CARD_UNKNOWN need a card. */
static td_verdict rule(td_decision_reason r, const td_decision_policy *p, const td_decision_input *in)
{
    bool card = in->card_found;
    switch (r) {
    case TD_RC_CARD_UNKNOWN: return red_if(!card);
    case TD_RC_CARD_DELETED: return red_if(card && in->card_state == TD_CS_DELETED);
    case TD_RC_CARD_SUSPENDED: return red_if(card && in->card_state == TD_CS_SUSPENDED);
    case TD_RC_CARD_EXPIRED:
        return red_if(card && td_expiry_passed(in->exp_month, in->exp_year, in->now_month, in->now_year));
    case TD_RC_TOO_MANY_TOKENS: return red_if(in->active_tokens >= p->max_active_tokens);
    case TD_RC_TOO_MANY_ATTEMPTS: return red_if(in->attempts_last_hour >= p->max_attempts_per_hour);
    case TD_RC_LOW_WALLET_SCORE: return score_verdict(p, in->wallet_score);
    case TD_RC_LOW_DEVICE_SCORE: return score_verdict(p, in->device_score);
    case TD_RC_PHONE_MISMATCH:
        if (blank(in->phone) || blank(in->reg_phone)) return TD_VERDICT_GREEN;
        return td_phone_match(in->phone, in->reg_phone, p->phone_match_digits) ? TD_VERDICT_GREEN : p->phone_mismatch;
    case TD_RC_EMAIL_MISMATCH:
        if (blank(in->email) || blank(in->reg_email)) return TD_VERDICT_GREEN;
        return td_email_match(in->email, in->reg_email) ? TD_VERDICT_GREEN : p->email_mismatch;
    default: return TD_VERDICT_GREEN;
    }
}

/* Every rule is evaluated in the documented order; the answer is the most
 * severe verdict, with the first rule that gave it. That is "all RED rules
 * in order, then all YELLOW rules in order", also when an issuer makes a
 * mismatch RED. */
td_decision_result td_decide_tokenization(const td_decision_policy *p, const td_decision_input *in)
{
    td_decision_result res = {TD_VERDICT_GREEN, TD_RC_NONE};
    for (int r = TD_RC_CARD_UNKNOWN; r < TD_RC__COUNT; r++) {
        td_verdict v = rule((td_decision_reason)r, p, in);
        if (v > res.verdict) {
            res.verdict = v;
            res.reason = (td_decision_reason)r;
        }
    }
    return res;
}

bool td_decision_counts_token(td_dcard_state s)
{
    return s == TD_DC_PENDING_IDV || s == TD_DC_ACTIVE || s == TD_DC_SUSPENDED;
}

/* ---- masking ---- */

int td_mask_phone(const char *phone, char *out, size_t cap)
{
    char d[PHONE_TEXT_MAX];
    int n = td_phone_digits(phone, d, sizeof d);
    if (cap) out[0] = '\0';
    if (n < 7 || n > 15 || (size_t)n + 1 > cap) return -1;
    memset(out, '*', (size_t)n - 4);
    memcpy(out + n - 4, d + n - 4, 4);
    out[n] = '\0';
    return 0;
}

/* The bytes of the UTF-8 character starting at s (at least 1). */
static size_t utf8_char_len(const char *s, size_t max)
{
    size_t n = 1;
    while (n < max && ((unsigned char)s[n] & 0xC0) == 0x80)
        n++;
    return n;
}

static bool email_usable(const char *email, const char **at)
{
    if (blank(email)) return false;
    *at = strchr(email, '@');
    if (!*at || *at == email || !(*at)[1] || strchr(*at + 1, '@')) return false;
    for (const unsigned char *s = (const unsigned char *)email; *s; s++)
        if (*s <= 0x20 || *s == 0x7f) return false;
    return true;
}

int td_mask_email(const char *email, char *out, size_t cap)
{
    const char *at;
    if (cap) out[0] = '\0';
    if (!email_usable(email, &at)) return -1;
    /* One whole character (never half of a multibyte one), then three stars
     * whatever the length, so the mask does not tell how long the name is. */
    size_t first = utf8_char_len(email, (size_t)(at - email));
    size_t domain = strlen(at);
    if (first + 3 + domain + 1 > cap) return -1;
    memcpy(out, email, first);
    memcpy(out + first, "***", 3);
    memcpy(out + first + 3, at, domain + 1);
    return 0;
}

/* ---- ID&V methods ---- */

const char *td_idv_type_name(td_idv_type t)
{
    return name_of(IDV_NAMES, COUNT(IDV_NAMES), (int)t);
}
int td_idv_type_parse(const char *s, td_idv_type *out)
{
    int v = index_of(IDV_NAMES, COUNT(IDV_NAMES), s);
    if (v < 0) return -1;
    *out = (td_idv_type)v;
    return 0;
}
const char *td_idv_method_id(td_idv_type t)
{
    return name_of(IDV_IDS, COUNT(IDV_IDS), (int)t);
}
int td_idv_method_id_parse(const char *id, td_idv_type *out)
{
    int v = index_of(IDV_IDS, COUNT(IDV_IDS), id);
    if (v < 0) return -1;
    *out = (td_idv_type)v;
    return 0;
}

void td_idv_config_default(td_idv_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < TD_IDV__COUNT; i++)
        c->offered[i] = (td_idv_type)i;
    c->n_offered = TD_IDV__COUNT;
}

int td_idv_config_check(const td_idv_config *c)
{
    unsigned seen = 0;
    if (c->n_offered < 0 || c->n_offered > TD_IDV__COUNT) return -1;
    for (int i = 0; i < c->n_offered; i++) {
        int t = (int)c->offered[i];
        if (t < 0 || t >= TD_IDV__COUNT || (seen & (1u << t))) return -1;
        seen |= 1u << t;
    }
    if (!memchr(c->app_label, '\0', sizeof c->app_label)) return -1;
    if (!memchr(c->service_phone, '\0', sizeof c->service_phone) || !c->service_phone[0]) return -1;
    return 0;
}

/* The value a method shows, or -1 if its data is missing. */
static int method_value(const td_idv_config *c, td_idv_type t, const char *phone, const char *email, char *out,
                        size_t cap)
{
    switch (t) {
    case TD_IDV_OTP_SMS: return td_mask_phone(phone, out, cap);
    case TD_IDV_OTP_EMAIL: return td_mask_email(email, out, cap);
    case TD_IDV_ISSUER_APP: return c->app_label[0] ? td_strlcpy(out, c->app_label, cap) : -1;
    case TD_IDV_CUSTOMER_SERVICE: return c->service_phone[0] ? td_strlcpy(out, c->service_phone, cap) : -1;
    default: return -1;
    }
}

static bool listed(const td_idv_list *l, td_idv_type t)
{
    for (int i = 0; i < l->n; i++)
        if (l->m[i].type == t) return true;
    return false;
}

static void add_method(td_idv_list *l, td_idv_type t)
{
    td_idv_method *m = &l->m[l->n++];
    m->type = t;
    td_strlcpy(m->id, td_idv_method_id(t), sizeof m->id);
}

int td_idv_methods(const td_idv_config *c, const char *reg_phone, const char *reg_email, td_idv_list *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < c->n_offered && i < TD_IDV__COUNT; i++) {
        td_idv_type t = c->offered[i];
        if ((int)t < 0 || t >= TD_IDV__COUNT || listed(out, t)) continue;
        td_idv_method *m = &out->m[out->n];
        if (method_value(c, t, reg_phone, reg_email, m->value, sizeof m->value) != 0) {
            m->value[0] = '\0';
            continue;
        }
        add_method(out, t);
    }
    /* A YELLOW with no way to pass ID&V would strand the end user: customer
     * service can always identify them, even if the issuer did not list it --
     * but only at a number the issuer gave. */
    if (out->n == 0 && c->service_phone[0]) {
        td_strlcpy(out->m[0].value, c->service_phone, sizeof out->m[0].value);
        add_method(out, TD_IDV_CUSTOMER_SERVICE);
    }
    return out->n;
}

void td_idv_settle(td_decision_result *d, const td_idv_list *l)
{
    if (d->verdict == TD_VERDICT_YELLOW && l->n == 0) {
        d->verdict = TD_VERDICT_RED;
        d->reason = TD_RC_NO_IDV_METHOD;
    }
}

const td_idv_method *td_idv_find(const td_idv_list *l, const char *id)
{
    for (int i = 0; id && i < l->n; i++)
        if (strcmp(l->m[i].id, id) == 0) return &l->m[i];
    return NULL;
}

/* ---- OTP delivery rate ---- */

void td_otp_limit_default(td_otp_limit *l)
{
    l->max = 3;
    l->window_ms = 10 * 60 * 1000;
}

/* A delivery counts while it is less than a window old (or, with clock skew,
 * in the future). */
static bool in_window(int64_t t, int64_t now_ms, int64_t window_ms)
{
    return t > now_ms - window_ms;
}

/* The k-th smallest (0-based) of the times in the window; n is small (the
 * recent deliveries of one card), so quadratic is fine and needs no copy. */
static int64_t kth_in_window(const int64_t *t, size_t n, int64_t now_ms, int64_t w, size_t k)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!in_window(t[i], now_ms, w) || t[i] >= best) continue;
        size_t le = 0;
        for (size_t j = 0; j < n; j++)
            if (in_window(t[j], now_ms, w) && t[j] <= t[i]) le++;
        if (le >= k + 1) best = t[i];
    }
    return best;
}

static int64_t ceil_seconds(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

bool td_otp_rate_check(const td_otp_limit *l, const int64_t *sent_ms, size_t n, int64_t now_ms, int64_t *retry_after_s)
{
    size_t c = 0;
    if (retry_after_s) *retry_after_s = 0;
    for (size_t i = 0; sent_ms && i < n; i++)
        if (in_window(sent_ms[i], now_ms, l->window_ms)) c++;
    if (l->max > 0 && c < (size_t)l->max) return true;
    int64_t wait = l->window_ms;
    if (l->max > 0) {
        /* One more is allowed once only max-1 remain: when the (c-max)-th
         * oldest delivery leaves the window. */
        int64_t t = kth_in_window(sent_ms, n, now_ms, l->window_ms, c - (size_t)l->max);
        wait = t + l->window_ms - now_ms;
    }
    if (retry_after_s) *retry_after_s = ceil_seconds(wait);
    return false;
}

/* ---- card data ---- */

bool td_luhn_ok(const char *digits)
{
    size_t n = digits ? strlen(digits) : 0;
    int sum = 0;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = digits[n - 1 - i];
        if (!is_digit(c)) return false;
        int d = c - '0';
        if (i % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    return sum % 10 == 0;
}

const char *td_pan_status_name(td_pan_status s)
{
    return name_of(PAN_NAMES, COUNT(PAN_NAMES), (int)s);
}

td_pan_status td_pan_check(const char *pan)
{
    if (!pan) return TD_PAN_NOT_DIGITS;
    size_t n = 0;
    for (; pan[n]; n++)
        if (!is_digit(pan[n])) return TD_PAN_NOT_DIGITS;
    if (n < 10 || n > 19) return TD_PAN_BAD_LENGTH;
    return td_luhn_ok(pan) ? TD_PAN_OK : TD_PAN_BAD_LUHN;
}

int td_expiry_parse(const char *mmyy, int *month, int *year)
{
    if (!mmyy || strlen(mmyy) != 4) return -1;
    for (int i = 0; i < 4; i++)
        if (!is_digit(mmyy[i])) return -1;
    int m = (mmyy[0] - '0') * 10 + (mmyy[1] - '0');
    int y = (mmyy[2] - '0') * 10 + (mmyy[3] - '0');
    if (m < 1 || m > 12) return -1;
    *month = m;
    *year = 2000 + y;
    return 0;
}

bool td_expiry_passed(int exp_month, int exp_year, int now_month, int now_year)
{
    if (exp_month < 1 || exp_month > 12) return true; /* fail closed */
    return exp_year < now_year || (exp_year == now_year && exp_month < now_month);
}

/* Days since 1970-01-01 → civil date (H. Hinnant's algorithm, proleptic
 * Gregorian), floor division so times before 1970 work too. */
void td_year_month(int64_t ms, int *year, int *month)
{
    int64_t days = ms / 86400000;
    if (ms % 86400000 < 0) days--;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2 ? 1 : 0));
    *month = (int)m;
}
