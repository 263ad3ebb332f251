/* card.c — the digital card (CARD token) state machine and the physical
 * card's commands: pure decisions. docs/cards.md has the transition table
 * these functions implement, and why each rule is what it is. */
#include "core/card.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const VERDICT_NAMES[] = {"GREEN", "YELLOW", "RED"};
static const char *const DC_NAMES[] = {"PENDING_IDV", "ACTIVE", "SUSPENDED", "DELETED", "DECLINED", "EXPIRED"};
static const char *const SRC_NAMES[] = {"WALLET", "TSP", "ISSUER"};
static const char *const EV_NAMES[] = {"ACTIVATE", "IDV_SUCCESS",     "IDV_FAILED", "SUSPEND",       "RESUME",
                                       "DELETE",   "DELETE_FROM_APP", "EXPIRE",     "STEPUP_EXPIRE", "UNKNOWN"};
static const char *const OUTCOME_NAMES[] = {"APPLIED", "NO_OP_ALREADY", "IGNORED_LATE", "REFUSED", "STORED_UNKNOWN"};
static const char *const WHY_NAMES[] = {"NONE",    "NOT_A_COMMAND",     "PENDING_IDV", "DELETED",       "DECLINED",
                                        "EXPIRED", "ALREADY_ACTIVATED", "OTHER_PARTY", "NOT_PERMITTED", "STALE"};
static const char *const WHY_TEXT[] = {
    "",
    "only suspend, resume and delete can be requested",
    "the digital card is waiting for ID&V and is not active yet",
    "the digital card is deleted",
    "the tokenization was declined; the digital card cannot be used",
    "the digital card has expired; only a delete applies",
    "the digital card has already been activated",
    "the digital card is suspended by another party, whose suspension this cannot lift",
    "this source cannot make this change",
    "an older event than the newest one already applied",
};
static const char *const OP_NAMES[] = {"", "DIGITIZE", "SUSPEND", "RESUME", "DELETE", "DELETE_FROM_APP", "EXPIRE"};
static const char *const OPS_NAMES[] = {"PENDING", "SUCCESSFUL", "FAILED"};
static const char *const DF_NAMES[] = {"",         "CANCELED_BY_USER", "CANCELED_BY_ISSUER",
                                       "DECLINED", "STEP_UP_EXPIRED",  "IDV_FAILED"};
static const char *const DF_TEXT[] = {"",         "canceled by the end user", "canceled by the issuer",
                                      "declined", "step-up expired",          "ID&V failed"};
static const char *const FX_NAMES[TD_FX__COUNT] = {"START_STEP_UP",  "STOP_STEP_UP", "ALLOW_REENROLMENT", "TSP_CALL",
                                                   "MSG_ACTIVATION", "MSG_DELETION", "MSG_CANCELLATION"};
static const char *const CS_NAMES[] = {"ACTIVE", "SUSPENDED", "DELETED"};
static const char *const CMD_NAMES[] = {"SUSPEND", "RESUME", "DELETE"};

/* Party bits in the order they are formatted. */
static const td_party PARTIES[] = {TD_PARTY_ISSUER, TD_PARTY_TSP, TD_PARTY_WALLET, TD_PARTY_MOBILE_PIN_LOCKED,
                                   TD_PARTY_CARDHOLDER};
static const char *const PARTY_NAMES[] = {"ISSUER", "TSP", "WALLET", "MOBILE_PIN_LOCKED", "CARDHOLDER"};

/* ---- names ---- */

static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

static int parse_enum(const char *const *names, int n, const char *s, bool nocase)
{
    for (int i = 0; s && i < n; i++)
        if ((nocase ? strcasecmp(names[i], s) : strcmp(names[i], s)) == 0) return i;
    return -1;
}

const char *td_verdict_name(td_verdict v)
{
    return name_of(VERDICT_NAMES, COUNT(VERDICT_NAMES), (int)v);
}
int td_verdict_parse(const char *s, td_verdict *out)
{
    int v = parse_enum(VERDICT_NAMES, COUNT(VERDICT_NAMES), s, true);
    if (v < 0) return -1;
    *out = (td_verdict)v;
    return 0;
}

const char *td_dcard_state_name(td_dcard_state s)
{
    return name_of(DC_NAMES, COUNT(DC_NAMES), (int)s);
}
int td_dcard_state_parse(const char *s, td_dcard_state *out)
{
    int v = parse_enum(DC_NAMES, COUNT(DC_NAMES), s, false);
    if (v < 0) return -1;
    *out = (td_dcard_state)v;
    return 0;
}
bool td_dcard_state_is_final(td_dcard_state s)
{
    return s == TD_DC_DELETED || s == TD_DC_DECLINED || s == TD_DC_EXPIRED;
}

const char *td_source_name(td_source s)
{
    return name_of(SRC_NAMES, COUNT(SRC_NAMES), (int)s);
}
int td_source_parse(const char *s, td_source *out)
{
    int v = parse_enum(SRC_NAMES, COUNT(SRC_NAMES), s, false);
    if (v < 0) return -1;
    *out = (td_source)v;
    return 0;
}

const char *td_party_name(td_party p)
{
    for (int i = 0; i < COUNT(PARTIES); i++)
        if (PARTIES[i] == p) return PARTY_NAMES[i];
    return "";
}
int td_party_parse(const char *s, td_party *out)
{
    int v = parse_enum(PARTY_NAMES, COUNT(PARTY_NAMES), s, false);
    if (v < 0) return -1;
    *out = PARTIES[v];
    return 0;
}
td_party td_party_of_source(td_source s)
{
    switch (s) {
    case TD_SRC_ISSUER: return TD_PARTY_ISSUER;
    case TD_SRC_TSP: return TD_PARTY_TSP;
    default: return TD_PARTY_WALLET;
    }
}
td_party td_party_from_mdes(const char *v)
{
    if (!v) return TD_PARTY_NONE;
    if (strcmp(v, "ISSUER") == 0) return TD_PARTY_ISSUER;
    if (strcmp(v, "TOKEN_REQUESTOR") == 0) return TD_PARTY_WALLET;
    if (strcmp(v, "MOBILE_PIN_LOCKED") == 0) return TD_PARTY_MOBILE_PIN_LOCKED;
    if (strcmp(v, "CARDHOLDER") == 0) return TD_PARTY_CARDHOLDER;
    return TD_PARTY_NONE;
}

int td_suspenders_format(td_suspenders set, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0) return -1;
    out[0] = '\0';
    for (int i = 0; i < COUNT(PARTIES); i++) {
        if (!(set & PARTIES[i])) continue;
        size_t n = strlen(PARTY_NAMES[i]);
        size_t sep = len ? 1 : 0;
        if (len + sep + n + 1 > cap) {
            out[0] = '\0';
            return -1;
        }
        if (sep) out[len++] = ',';
        memcpy(out + len, PARTY_NAMES[i], n);
        len += n;
        out[len] = '\0';
    }
    return 0;
}

int td_suspenders_parse(const char *s, td_suspenders *out)
{
    td_suspenders set = 0;
    if (!s) return -1;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        int found = -1;
        for (int i = 0; i < COUNT(PARTY_NAMES) && found < 0; i++)
            if (strlen(PARTY_NAMES[i]) == n && strncmp(PARTY_NAMES[i], s, n) == 0) found = i;
        if (found < 0) return -1;
        set |= (td_suspenders)PARTIES[found];
        if (!comma) break;
        s = comma + 1;
        if (!*s) return -1; /* a trailing comma names nobody */
    }
    *out = set;
    return 0;
}

const char *td_dcard_ev_name(td_dcard_ev e)
{
    return name_of(EV_NAMES, COUNT(EV_NAMES), (int)e);
}
td_dcard_ev td_dcard_ev_parse(const char *s)
{
    int v = parse_enum(EV_NAMES, COUNT(EV_NAMES), s, true);
    if (v >= 0) return (td_dcard_ev)v;
    if (s && strcasecmp(s, "IDV_SUCCEEDED") == 0) return TD_EV_IDV_SUCCESS;
    if (s && (strcasecmp(s, "STEP_UP_EXPIRE") == 0 || strcasecmp(s, "STEP_UP_EXPIRED") == 0))
        return TD_EV_STEPUP_EXPIRE;
    return TD_EV_UNKNOWN;
}

const char *td_dcard_outcome_name(td_dcard_outcome o)
{
    return name_of(OUTCOME_NAMES, COUNT(OUTCOME_NAMES), (int)o);
}
const char *td_dcard_why_name(td_dcard_why w)
{
    return name_of(WHY_NAMES, COUNT(WHY_NAMES), (int)w);
}
const char *td_dcard_why_text(td_dcard_why w)
{
    return name_of(WHY_TEXT, COUNT(WHY_TEXT), (int)w);
}
const char *td_card_op_name(td_card_op op)
{
    return name_of(OP_NAMES, COUNT(OP_NAMES), (int)op);
}
const char *td_op_status_name(td_op_status s)
{
    return name_of(OPS_NAMES, COUNT(OPS_NAMES), (int)s);
}
const char *td_digitize_reason_name(td_digitize_reason r)
{
    return name_of(DF_NAMES, COUNT(DF_NAMES), (int)r);
}
const char *td_digitize_reason_text(td_digitize_reason r)
{
    return name_of(DF_TEXT, COUNT(DF_TEXT), (int)r);
}
const char *td_fx_name(unsigned bit)
{
    for (int i = 0; i < TD_FX__COUNT; i++)
        if (bit == 1u << i) return FX_NAMES[i];
    return "";
}
const char *td_card_state_name(td_card_state s)
{
    return name_of(CS_NAMES, COUNT(CS_NAMES), (int)s);
}
int td_card_state_parse(const char *s, td_card_state *out)
{
    int v = parse_enum(CS_NAMES, COUNT(CS_NAMES), s, false);
    if (v < 0) return -1;
    *out = (td_card_state)v;
    return 0;
}
const char *td_card_cmd_name(td_card_cmd c)
{
    return name_of(CMD_NAMES, COUNT(CMD_NAMES), (int)c);
}
int td_card_cmd_parse(const char *s, td_card_cmd *out)
{
    int v = parse_enum(CMD_NAMES, COUNT(CMD_NAMES), s, false);
    if (v < 0) return -1;
    *out = (td_card_cmd)v;
    return 0;
}

/* ---- the digital card machine ---- */

/* The result of an input that changes nothing and is not recorded. */
static td_dcard_result unchanged(const td_dcard *v)
{
    td_dcard_result r;
    memset(&r, 0, sizeof r);
    r.outcome = TD_DC_NO_OP_ALREADY;
    r.why = TD_DCW_NONE;
    r.rec = *v;
    r.notice.op = TD_OP_NONE;
    return r;
}

/* Every input that is not refused is appended to the card's events, under
 * the next sequence number (token_events is keyed by (token, seq)). */
static void record(td_dcard_result *r)
{
    r->record_event = true;
    r->rec.seq++;
}

static bool is_event(const td_dcard_input *in)
{
    return in->origin == TD_ORIGIN_EVENT;
}

/* An accepted upstream event moves the watermark that later suspend/resume
 * events are compared with. Commands never move it: they carry tokend's
 * clock, events carry the TSP's, and the two are not comparable. */
static void accept_time(td_dcard_result *r, const td_dcard_input *in)
{
    if (is_event(in) && in->event_ms > r->rec.last_event_ms) r->rec.last_event_ms = in->event_ms;
}

/* A command that cannot apply is refused; an event that cannot apply is a
 * fact we could not use: recorded, acknowledged, ignored. */
static td_dcard_result cannot_apply(const td_dcard *v, const td_dcard_input *in, td_dcard_why why)
{
    td_dcard_result r = unchanged(v);
    r.why = why;
    if (is_event(in)) {
        r.outcome = TD_DC_IGNORED_LATE;
        record(&r);
    } else {
        r.outcome = TD_DC_REFUSED;
    }
    return r;
}

/* Already in the target state: success, no second effect. A repeated event
 * is still recorded (it is a fact, and its time is accepted); a repeated
 * command is answered without writing anything. */
static td_dcard_result already(const td_dcard *v, const td_dcard_input *in)
{
    td_dcard_result r = unchanged(v);
    if (is_event(in)) {
        record(&r);
        accept_time(&r, in);
    }
    return r;
}

/* The start of every change; the caller sets the new record and the notice.
 * A command that changes the card must be carried out at the TSP first. */
static td_dcard_result change(const td_dcard *v, const td_dcard_input *in)
{
    td_dcard_result r = unchanged(v);
    r.outcome = TD_DC_APPLIED;
    record(&r);
    accept_time(&r, in);
    if (!is_event(in)) r.effects |= TD_FX_TSP_CALL;
    return r;
}

static void notify(td_dcard_result *r, td_card_op op, td_op_status st, td_digitize_reason why, td_source src)
{
    r->notice.op = op;
    r->notice.status = st;
    r->notice.reason = why;
    r->notice.source = src;
}

/* Leaving step-up for good: whatever is still scheduled for it is owed a stop. */
static void end_step_up(td_dcard_result *r, const td_dcard *v)
{
    if (v->stepup_open || v->state == TD_DC_PENDING_IDV) r->effects |= TD_FX_STOP_STEP_UP;
    r->rec.stepup_open = false;
}

/* The reason a step-up that ran out is reported with. */
static td_digitize_reason ran_out_reason(const td_dcard *v)
{
    return v->idv_failures > 0 ? TD_DF_IDV_FAILED : TD_DF_STEP_UP_EXPIRED;
}

static td_dcard_why final_why(td_dcard_state s)
{
    switch (s) {
    case TD_DC_DELETED: return TD_DCW_DELETED;
    case TD_DC_DECLINED: return TD_DCW_DECLINED;
    case TD_DC_EXPIRED: return TD_DCW_EXPIRED;
    default: return TD_DCW_NONE;
    }
}

/* Suspend and resume toggle, so only the newest of them counts: one older
 * than the newest event accepted is ignored. Activation and deletion are
 * one-way and apply whenever they arrive. */
static bool stale(const td_dcard *v, const td_dcard_input *in)
{
    return is_event(in) && in->event_ms > 0 && in->event_ms < v->last_event_ms;
}

static td_party party_of(const td_dcard_input *in)
{
    return in->party != TD_PARTY_NONE ? in->party : td_party_of_source(in->source);
}

/* PENDING_IDV → ACTIVE: the tokenization succeeded. */
static td_dcard_result activation(const td_dcard *v, const td_dcard_input *in)
{
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_ACTIVE;
    r.rec.suspended_by = 0;
    end_step_up(&r, v);
    r.effects |= TD_FX_MSG_ACTIVATION;
    notify(&r, TD_OP_DIGITIZE, TD_OPS_SUCCESSFUL, TD_DF_NONE, in->source);
    return r;
}

static td_dcard_result on_activate(const td_dcard *v, const td_dcard_input *in)
{
    switch (v->state) {
    case TD_DC_PENDING_IDV: return activation(v, in);
    case TD_DC_ACTIVE: return already(v, in);
    case TD_DC_SUSPENDED: return cannot_apply(v, in, TD_DCW_ALREADY_ACTIVATED);
    default: return cannot_apply(v, in, final_why(v->state));
    }
}

/* A failed attempt ends nothing: the end user may try again or another
 * method until the session runs out. It is counted so that the session's
 * end is reported as IDV_FAILED rather than STEP_UP_EXPIRED. */
static td_dcard_result on_idv_failed(const td_dcard *v, const td_dcard_input *in)
{
    if (v->state == TD_DC_ACTIVE || v->state == TD_DC_SUSPENDED) return cannot_apply(v, in, TD_DCW_ALREADY_ACTIVATED);
    if (v->state != TD_DC_PENDING_IDV) return cannot_apply(v, in, final_why(v->state));
    td_dcard_result r = change(v, in);
    if (r.rec.idv_failures < INT_MAX) r.rec.idv_failures++;
    return r;
}

static td_dcard_result on_suspend(const td_dcard *v, const td_dcard_input *in)
{
    td_party p = party_of(in);
    if (v->state == TD_DC_PENDING_IDV) return cannot_apply(v, in, TD_DCW_PENDING_IDV);
    if (v->state != TD_DC_ACTIVE && v->state != TD_DC_SUSPENDED) return cannot_apply(v, in, final_why(v->state));
    if (v->state == TD_DC_SUSPENDED && (v->suspended_by & p)) return already(v, in);
    if (stale(v, in)) return cannot_apply(v, in, TD_DCW_STALE);
    /* ACTIVE → SUSPENDED, or one more party joins the suspension. */
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_SUSPENDED;
    r.rec.suspended_by = (td_suspenders)(v->suspended_by | p);
    notify(&r, TD_OP_SUSPEND, TD_OPS_SUCCESSFUL, TD_DF_NONE, in->source);
    return r;
}

/* Each party lifts only its own suspension, and the issuer's only with the
 * issuer as source (whatever party the event names). An empty set on a
 * SUSPENDED card (a record from before suspenders were kept) is lifted by
 * anyone. */
static td_dcard_result resume_suspended(const td_dcard *v, const td_dcard_input *in)
{
    td_party p = party_of(in);
    td_suspenders set = v->suspended_by;
    if (p == TD_PARTY_ISSUER && in->source != TD_SRC_ISSUER) return cannot_apply(v, in, TD_DCW_NOT_PERMITTED);
    if (set != 0 && !(set & p)) return cannot_apply(v, in, TD_DCW_OTHER_PARTY);
    if (stale(v, in)) return cannot_apply(v, in, TD_DCW_STALE);
    td_dcard_result r = change(v, in);
    r.rec.suspended_by = (td_suspenders)(set & ~(unsigned)p);
    if (r.rec.suspended_by == 0) r.rec.state = TD_DC_ACTIVE;
    notify(&r, TD_OP_RESUME, TD_OPS_SUCCESSFUL, TD_DF_NONE, in->source);
    return r;
}

static td_dcard_result on_resume(const td_dcard *v, const td_dcard_input *in)
{
    switch (v->state) {
    case TD_DC_SUSPENDED: return resume_suspended(v, in);
    case TD_DC_ACTIVE: return already(v, in);
    case TD_DC_PENDING_IDV:
        /* Resume on a pending card is the activation after issuer-side ID&V
         * (or the TSP reporting it); a wallet cannot vouch for ID&V. */
        if (in->source == TD_SRC_WALLET) return cannot_apply(v, in, TD_DCW_NOT_PERMITTED);
        return activation(v, in);
    default: return cannot_apply(v, in, final_why(v->state));
    }
}

static void mark_revivable(td_dcard_result *r, const td_dcard_input *in)
{
    if (in->type != TD_EV_DELETE_FROM_APP) return;
    int64_t at = in->event_ms > 0 ? in->event_ms : in->now_ms;
    r->rec.revivable_until_ms = at + TD_REVIVABLE_MS;
}

/* A delete during step-up is a canceled tokenization, not a deletion: the
 * issuer hears DIGITIZE FAILED, the end user a cancellation (if the end user
 * canceled), and the card may be tokenized again. */
static td_dcard_result cancel_pending(const td_dcard *v, const td_dcard_input *in)
{
    bool by_issuer = in->source == TD_SRC_ISSUER;
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_DELETED;
    end_step_up(&r, v);
    r.effects |= TD_FX_ALLOW_REENROLMENT | (by_issuer ? 0u : (unsigned)TD_FX_MSG_CANCELLATION);
    mark_revivable(&r, in);
    notify(&r, TD_OP_DIGITIZE, TD_OPS_FAILED, by_issuer ? TD_DF_CANCELED_BY_ISSUER : TD_DF_CANCELED_BY_USER,
           in->source);
    return r;
}

static td_dcard_result on_delete(const td_dcard *v, const td_dcard_input *in)
{
    switch (v->state) {
    case TD_DC_DELETED: return already(v, in);
    case TD_DC_DECLINED: return cannot_apply(v, in, TD_DCW_DECLINED);
    case TD_DC_PENDING_IDV: return cancel_pending(v, in);
    default: break; /* ACTIVE, SUSPENDED, EXPIRED */
    }
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_DELETED;
    r.rec.suspended_by = 0;
    end_step_up(&r, v);
    r.effects |= TD_FX_ALLOW_REENROLMENT;
    /* The end user is told when a card they could pay with goes away. */
    if (v->state != TD_DC_EXPIRED) r.effects |= TD_FX_MSG_DELETION;
    mark_revivable(&r, in);
    notify(&r, in->type == TD_EV_DELETE_FROM_APP ? TD_OP_DELETE_FROM_APP : TD_OP_DELETE, TD_OPS_SUCCESSFUL, TD_DF_NONE,
           in->source);
    return r;
}

/* The token itself expired at the TSP. During step-up that ends the
 * tokenization (DIGITIZE FAILED); afterwards it is an expiry. */
static td_dcard_result on_expire(const td_dcard *v, const td_dcard_input *in)
{
    if (v->state == TD_DC_EXPIRED) return already(v, in);
    if (v->state == TD_DC_DELETED || v->state == TD_DC_DECLINED) return cannot_apply(v, in, final_why(v->state));
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_EXPIRED;
    r.rec.suspended_by = 0;
    end_step_up(&r, v);
    r.effects |= TD_FX_ALLOW_REENROLMENT;
    if (v->state == TD_DC_PENDING_IDV)
        notify(&r, TD_OP_DIGITIZE, TD_OPS_FAILED, ran_out_reason(v), in->source);
    else
        notify(&r, TD_OP_EXPIRE, TD_OPS_SUCCESSFUL, TD_DF_NONE, in->source);
    return r;
}

/* tokend's step-up timer: a pending card is deleted through the TSP. A timer
 * that fires after the card moved on (activated, canceled) does nothing. */
static td_dcard_result on_stepup_expire(const td_dcard *v, const td_dcard_input *in)
{
    if (v->state == TD_DC_ACTIVE || v->state == TD_DC_SUSPENDED) return cannot_apply(v, in, TD_DCW_ALREADY_ACTIVATED);
    if (v->state != TD_DC_PENDING_IDV) return cannot_apply(v, in, final_why(v->state));
    td_dcard_result r = change(v, in);
    r.rec.state = TD_DC_DELETED;
    end_step_up(&r, v);
    r.effects |= TD_FX_ALLOW_REENROLMENT | TD_FX_TSP_CALL;
    notify(&r, TD_OP_DIGITIZE, TD_OPS_FAILED, ran_out_reason(v), in->source);
    return r;
}

static bool is_command_type(td_dcard_ev t)
{
    return t == TD_EV_SUSPEND || t == TD_EV_RESUME || t == TD_EV_DELETE;
}

td_dcard_result td_dcard_apply(const td_dcard *v, const td_dcard_input *in)
{
    if (!is_event(in) && !is_command_type(in->type)) return cannot_apply(v, in, TD_DCW_NOT_A_COMMAND);
    switch (in->type) {
    case TD_EV_ACTIVATE:
    case TD_EV_IDV_SUCCESS: return on_activate(v, in);
    case TD_EV_IDV_FAILED: return on_idv_failed(v, in);
    case TD_EV_SUSPEND: return on_suspend(v, in);
    case TD_EV_RESUME: return on_resume(v, in);
    case TD_EV_DELETE:
    case TD_EV_DELETE_FROM_APP: return on_delete(v, in);
    case TD_EV_EXPIRE: return on_expire(v, in);
    case TD_EV_STEPUP_EXPIRE: return on_stepup_expire(v, in);
    default: break;
    }
    /* Unknown is not an error: stored and acknowledged, nothing changes. */
    td_dcard_result r = unchanged(v);
    r.outcome = TD_DC_STORED_UNKNOWN;
    record(&r);
    return r;
}

td_dcard_result td_dcard_initial(td_verdict verdict)
{
    td_dcard zero;
    memset(&zero, 0, sizeof zero);
    td_dcard_result r = unchanged(&zero);
    r.outcome = TD_DC_APPLIED;
    record(&r);
    switch (verdict) {
    case TD_VERDICT_GREEN:
        r.rec.state = TD_DC_ACTIVE;
        r.effects = TD_FX_MSG_ACTIVATION;
        notify(&r, TD_OP_DIGITIZE, TD_OPS_SUCCESSFUL, TD_DF_NONE, TD_SRC_TSP);
        break;
    case TD_VERDICT_YELLOW:
        r.rec.state = TD_DC_PENDING_IDV;
        r.rec.stepup_open = true;
        r.effects = TD_FX_START_STEP_UP;
        notify(&r, TD_OP_DIGITIZE, TD_OPS_PENDING, TD_DF_NONE, TD_SRC_TSP);
        break;
    default:
        r.rec.state = TD_DC_DECLINED;
        notify(&r, TD_OP_DIGITIZE, TD_OPS_FAILED, TD_DF_DECLINED, TD_SRC_TSP);
        break;
    }
    return r;
}

/* ---- the physical card ---- */

static td_card_state card_target(td_card_cmd c)
{
    return c == TD_CARD_SUSPEND ? TD_CS_SUSPENDED : c == TD_CARD_RESUME ? TD_CS_ACTIVE : TD_CS_DELETED;
}

static td_card_op card_op(td_card_cmd c)
{
    return c == TD_CARD_SUSPEND ? TD_OP_SUSPEND : c == TD_CARD_RESUME ? TD_OP_RESUME : TD_OP_DELETE;
}

td_card_result td_card_apply(td_card_state st, td_card_cmd c)
{
    td_card_result r;
    memset(&r, 0, sizeof r);
    r.state = st;
    r.notice.op = TD_OP_NONE;
    td_card_state target = card_target(c);
    if (st == target) {
        r.outcome = TD_DC_NO_OP_ALREADY;
    } else if (st == TD_CS_DELETED) {
        r.outcome = TD_DC_REFUSED;
        r.why = TD_DCW_DELETED;
    } else {
        r.outcome = TD_DC_APPLIED;
        r.state = target;
        r.notice.op = card_op(c);
        r.notice.status = TD_OPS_SUCCESSFUL;
        r.notice.source = TD_SRC_ISSUER;
    }
    return r;
}

bool td_card_cascade(td_card_cmd c, td_dcard_state dc, int64_t now_ms, td_dcard_input *out)
{
    /* Suspending or resuming a card leaves its digital cards alone; the
     * deleted and declined ones have nothing left to delete. */
    if (c != TD_CARD_DELETE || dc == TD_DC_DELETED || dc == TD_DC_DECLINED) return false;
    memset(out, 0, sizeof *out);
    out->type = TD_EV_DELETE;
    out->source = TD_SRC_ISSUER;
    out->origin = TD_ORIGIN_COMMAND;
    out->party = TD_PARTY_NONE;
    out->event_ms = now_ms;
    out->now_ms = now_ms;
    return true;
}
