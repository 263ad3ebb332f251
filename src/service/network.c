/* network.c — the Network API's use cases: a tokenization request (decide,
 * create the digital card and everything it owes), an OTP delivery (sealed
 * into the outbox, rate limited per digital card) and a lifecycle event from
 * the TSP or the wallet (applied exactly once per source and event id). Each
 * runs as one write job, so what it reads (counters, duplicates, the card's
 * sequence) and what it writes are one transaction. docs/network.md is the
 * contract. */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/card_rows.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)
#define HOUR_MS 3600000LL

/* ================= tokenization ================= */

/* A retried request (its correlation id already has a digital card) gets the
 * first answer, and nothing is written. */
static td_st replay_tokenization(td_conn *c, td_tokenize *cmd, bool *replayed)
{
    td_dcard_rec dc = {0};
    td_st st = OPS(cmd->w.svc)->dcard_by_correlation(c, cmd->issuer_id, cmd->correlation_id, &dc);
    *replayed = false;
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    free(cmd->answer_json);
    cmd->answer_json = dc.answer_json;
    dc.answer_json = NULL;
    td_dcard_rec_free(&dc);
    if (!cmd->answer_json) return TD_ST_INTERNAL;
    cmd->replayed_request = *replayed = true;
    return TD_ST_OK;
}

/* The registered card the request names: by the PAN's keyed fingerprint, or by
 * the issuer's reference. The PAN is wiped as soon as it is no longer needed:
 * only its last four digits stay, for an unknown card's record. */
static td_st find_card(td_conn *c, td_tokenize *cmd, td_card_rec *card, bool *found, char last4[5])
{
    td_svc *svc = cmd->w.svc;
    td_st st;
    last4[0] = '\0';
    if (cmd->pan[0]) {
        char fp[65];
        size_t n = strlen(cmd->pan);
        if (n >= 4) memcpy(last4, cmd->pan + n - 4, 5);
        td_pan_fingerprint(svc->cfg->master_key, cmd->pan, fp);
        td_wipe(cmd->pan, sizeof cmd->pan);
        st = OPS(svc)->card_by_fp(c, cmd->issuer_id, fp, card);
    } else {
        st = OPS(svc)->card_get(c, cmd->issuer_id, cmd->card_id, card);
    }
    *found = st == TD_ST_OK;
    if (*found) td_strlcpy(last4, card->last4, 5);
    /* The decision compares the request's phone and email with the card's. */
    if (*found && td_card_open_contact(svc->cfg->master_key, card) != 0) return TD_ST_INTERNAL;
    return st == TD_ST_NOT_FOUND ? TD_ST_OK : st;
}

typedef struct {
    td_card_rec card;
    bool card_known;   /* a registered card matched the PAN or reference */
    bool expiry_match; /* ... and the expiry, when the request gave one */
    char last4[5];
    td_card_policy policy;
    td_decision_result decision;
    td_idv_list idv;
} enrolment;

/* The decision's inputs: the card as registered, this month, the counters and
 * what the wallet says. An expiry given with the request must be the
 * registered one; otherwise the card is treated as unknown. */
static td_st decide(td_conn *c, td_tokenize *cmd, enrolment *en, int64_t now)
{
    td_decision_input in = {0};
    int live = 0, attempts = 0;
    in.card_found = en->card_known && en->expiry_match;
    if (en->card_known) {
        td_st st = OPS(cmd->w.svc)->dcard_counts(c, cmd->issuer_id, en->card.card_id, now - HOUR_MS, &live, &attempts);
        if (st != TD_ST_OK) return st;
        in.card_state = en->card.state;
        /* An unreadable expiry leaves month 0, which counts as expired. */
        if (td_expiry_parse(en->card.expiry, &in.exp_month, &in.exp_year)) in.exp_month = in.exp_year = 0;
    }
    td_year_month(now, &in.now_year, &in.now_month);
    in.active_tokens = live;
    in.attempts_last_hour = attempts;
    in.wallet_score = cmd->wallet_score;
    in.device_score = cmd->device_score;
    in.phone = cmd->phone;
    in.email = cmd->email;
    in.reg_phone = en->card_known ? en->card.phone : NULL;
    in.reg_email = en->card_known ? en->card.email : NULL;
    en->decision = td_decide_tokenization(&en->policy.decision, &in);
    return TD_ST_OK;
}

/* The methods, from the contact data the issuer registered (never the
 * wallet's: the OTP must reach the person the bank knows). CUSTOMER_SERVICE
 * only with the issuer's number: an empty one left the wallet nothing to show. */
static void idv_methods(enrolment *en)
{
    const char *phone = en->card_known ? en->card.phone : NULL;
    const char *email = en->card_known ? en->card.email : NULL;
    td_idv_methods(&en->policy.idv, phone, email, &en->idv);
    td_idv_settle(&en->decision, &en->idv);
}

static json_t *idv_json(const td_idv_list *l)
{
    json_t *a = json_array();
    for (int i = 0; a && i < l->n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "id", l->m[i].id, "type", td_idv_type_name(l->m[i].type),
                                           "value", l->m[i].value));
    return a;
}

/* The answer, exactly as docs/network.md shows it; kept with the record so a
 * retried request gets these bytes again. */
static char *tokenize_answer(const td_dcard_rec *dc, const enrolment *en)
{
    json_t *v = json_pack("{s:s,s:s,s:s}", "decision", td_verdict_name(dc->verdict), "digitalCardId", dc->id,
                          "operationId", dc->digitize_op_id);
    if (!v) return NULL;
    if (dc->verdict != TD_VERDICT_GREEN)
        json_object_set_new(v, "reason", json_string(td_decision_reason_name(en->decision.reason)));
    if (dc->verdict == TD_VERDICT_YELLOW) {
        char when[40];
        td_iso8601_ms(dc->stepup_deadline_ms, when, sizeof when);
        json_object_set_new(v, "idvMethods", idv_json(&en->idv));
        json_object_set_new(v, "stepUpExpiresAt", json_string(when));
    }
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The new digital card, its JSON documents included (freed by the caller). */
static int build_record(const td_tokenize *cmd, const enrolment *en, const td_dcard_result *init, int64_t now,
                        td_dcard_rec *dc)
{
    memset(dc, 0, sizeof *dc);
    td_new_dcard_id(dc->id);
    td_new_operation_id(dc->digitize_op_id);
    td_strlcpy(dc->issuer_id, cmd->issuer_id, sizeof dc->issuer_id);
    /* A wrong expiry still names the card, so the attempt counts against it. */
    if (en->card_known) td_strlcpy(dc->card_id, en->card.card_id, sizeof dc->card_id);
    dc->d = init->rec;
    dc->verdict = en->decision.verdict;
    if (en->decision.reason != TD_RC_NONE)
        td_strlcpy(dc->decision_reason, td_decision_reason_name(en->decision.reason), sizeof dc->decision_reason);
    td_strlcpy(dc->wallet_provider_id, cmd->wallet_provider_id, sizeof dc->wallet_provider_id);
    td_strlcpy(dc->token_requestor_id, cmd->token_requestor_id, sizeof dc->token_requestor_id);
    td_strlcpy(dc->token_storage_id, cmd->token_storage_id, sizeof dc->token_storage_id);
    dc->is_primary = cmd->is_primary;
    td_strlcpy(dc->correlation_id, cmd->correlation_id, sizeof dc->correlation_id);
    td_strlcpy(dc->last4, en->last4, sizeof dc->last4);
    if (dc->verdict == TD_VERDICT_YELLOW) dc->stepup_deadline_ms = now + en->policy.session_ms;
    dc->created_ms = dc->updated_ms = now;
    dc->device_json = dup_or_null(cmd->device_json && cmd->device_json[0] ? cmd->device_json : "{}");
    json_t *methods = dc->verdict == TD_VERDICT_YELLOW ? idv_json(&en->idv) : json_array();
    dc->idv_json = methods ? json_dumps(methods, JSON_COMPACT) : NULL;
    json_decref(methods);
    dc->answer_json = tokenize_answer(dc, en);
    return dc->device_json && dc->idv_json && dc->answer_json ? 0 : -1;
}

/* Event 1 of every digital card: the decision that created it. */
static td_st first_event(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const enrolment *en, int64_t now)
{
    td_dcard_event_rec ev = {.seq = dc->d.seq, .event_ms = now, .time_ms = now};
    td_strlcpy(ev.digital_card_id, dc->id, sizeof ev.digital_card_id);
    td_strlcpy(ev.issuer_id, dc->issuer_id, sizeof ev.issuer_id);
    td_strlcpy(ev.source, td_source_name(TD_SRC_TSP), sizeof ev.source);
    td_strlcpy(ev.type, "TOKENIZE", sizeof ev.type);
    td_strlcpy(ev.outcome, td_dcard_outcome_name(TD_DC_APPLIED), sizeof ev.outcome);
    json_t *d = json_pack("{s:s,s:s}", "decision", td_verdict_name(en->decision.verdict), "reason",
                          en->decision.reason == TD_RC_NONE ? "" : td_decision_reason_name(en->decision.reason));
    char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (!detail) return TD_ST_INTERNAL;
    ev.detail_json = detail;
    td_st st = OPS(svc)->dcard_event_append(c, &ev);
    free(detail);
    return st;
}

/* Everything the new record owes: its event, the DIGITIZE operation, the
 * issuer's notice (only about a card the issuer knows), the activation
 * message (GREEN) and the step-up timers (YELLOW). */
static td_st write_owed(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const enrolment *en,
                        const td_dcard_result *init, const td_tokenize *cmd, int64_t now)
{
    td_operation_rec op;
    td_st st = first_event(svc, c, dc, en, now);
    td_op_fill(&op, dc, &init->notice, dc->digitize_op_id, "TSP", "", "", cmd->correlation_id, now);
    if (st == TD_ST_OK) st = OPS(svc)->op_insert(c, &op);
    if (st == TD_ST_OK && en->card_known)
        st = td_outbox_notice(svc, c, dc, &init->notice, dc->digitize_op_id, &dc->d, cmd->correlation_id, now, now);
    if (st == TD_ST_OK && (init->effects & TD_FX_MSG_ACTIVATION))
        st = td_outbox_message(svc, c, dc, "ACTIVATION", dc->digitize_op_id, &dc->d, now);
    if (st == TD_ST_OK && (init->effects & TD_FX_START_STEP_UP)) st = td_stepup_schedule(svc, c, dc, &en->policy, now);
    return st;
}

/* Inserts the record first: a concurrent duplicate correlation id meets the
 * unique index before anything else is written, and replays the winner. */
static td_st create_dcard(td_conn *c, td_tokenize *cmd, const enrolment *en, int64_t now)
{
    td_svc *svc = cmd->w.svc;
    td_dcard_result init = td_dcard_initial(en->decision.verdict);
    td_dcard_rec dc;
    td_st st = build_record(cmd, en, &init, now, &dc) ? TD_ST_INTERNAL : OPS(svc)->dcard_insert(c, &dc);
    if (st == TD_ST_CONFLICT) {
        bool replayed;
        td_dcard_rec_free(&dc);
        st = replay_tokenization(c, cmd, &replayed);
        return st == TD_ST_OK && !replayed ? TD_ST_CONFLICT : st;
    }
    if (st == TD_ST_OK) st = write_owed(svc, c, &dc, en, &init, cmd, now);
    if (st == TD_ST_OK) {
        free(cmd->answer_json);
        cmd->answer_json = dc.answer_json;
        dc.answer_json = NULL;
    }
    td_dcard_rec_free(&dc);
    return st;
}

static td_st run_tokenize(td_conn *c, td_write *w)
{
    td_tokenize *cmd = (td_tokenize *)w;
    bool replayed;
    int64_t now = td_now_ms();
    enrolment *en = calloc(1, sizeof *en);
    if (!en) return TD_ST_INTERNAL;
    td_st st = replay_tokenization(c, cmd, &replayed);
    if (st == TD_ST_OK && !replayed) st = find_card(c, cmd, &en->card, &en->card_known, en->last4);
    td_wipe(cmd->pan, sizeof cmd->pan);
    if (st == TD_ST_OK && !replayed) {
        en->expiry_match = !cmd->expiry[0] || !en->card_known || strcmp(cmd->expiry, en->card.expiry) == 0;
        st = td_card_policy_load(w->svc, c, cmd->issuer_id, &en->policy);
        if (st == TD_ST_OK) st = decide(c, cmd, en, now);
        if (st == TD_ST_OK && en->decision.verdict == TD_VERDICT_YELLOW) idv_methods(en);
        if (st == TD_ST_OK) st = create_dcard(c, cmd, en, now);
    }
    free(en);
    return st;
}

static void dispose_tokenize(td_write *w)
{
    td_tokenize *cmd = (td_tokenize *)w;
    td_wipe(cmd->pan, sizeof cmd->pan);
    free(cmd->device_json);
    free(cmd->answer_json);
    cmd->device_json = cmd->answer_json = NULL;
}

void td_svc_tokenize(td_svc *svc, td_tokenize *cmd)
{
    cmd->w.run = run_tokenize;
    if (!cmd->w.dispose) cmd->w.dispose = dispose_tokenize;
    td_svc_submit(svc, &cmd->w);
}

/* ================= OTP delivery ================= */

#define OTP_TIMES_MAX 128 /* above the largest otp.max a policy accepts */

/* The issuer's digital card, read in the writer (another issuer's is not found). */
static td_st read_own_dcard(td_conn *c, td_write *w, const char *issuer_id, const char *id, td_dcard_rec *dc)
{
    td_st st = OPS(w->svc)->dcard_get(c, issuer_id, id, dc);
    if (st == TD_ST_NOT_FOUND) td_fail(&w->err, TD_E_NOT_FOUND, "digital card %s not found", id);
    return st;
}

/* The offered method with this id, if it is an OTP channel: its masked target. */
static bool offered_otp_method(const td_dcard_rec *dc, const char *method_id, char *target, size_t cap)
{
    td_idv_type t;
    if (td_idv_method_id_parse(method_id, &t) || (t != TD_IDV_OTP_SMS && t != TD_IDV_OTP_EMAIL)) return false;
    json_t *a = json_loads(dc->idv_json ? dc->idv_json : "[]", 0, NULL);
    size_t i;
    json_t *m;
    bool found = false;
    json_array_foreach(a, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (!found && id && strcmp(id, method_id) == 0) {
            const char *value = json_string_value(json_object_get(m, "value"));
            td_strlcpy(target, value ? value : "", cap);
            found = true;
        }
    }
    json_decref(a);
    return found;
}

/* The policy's sliding window over this card's earlier deliveries. */
static td_st otp_rate_ok(td_conn *c, td_send_otp *cmd, const td_card_policy *p, int64_t now, bool *ok)
{
    int64_t times[OTP_TIMES_MAX];
    size_t n = 0;
    int64_t since = now - p->otp.window_ms;
    td_st st =
        OPS(cmd->w.svc)->outbox_otp_times(c, cmd->issuer_id, cmd->digital_card_id, since, times, OTP_TIMES_MAX, &n);
    if (st != TD_ST_OK) return st;
    *ok = td_otp_rate_check(&p->otp, times, n, now, &cmd->retry_after_s);
    return TD_ST_OK;
}

/* The USER row that carries the OTP, sealed with the master key. */
static td_st queue_otp(td_conn *c, td_send_otp *cmd, const td_dcard_rec *dc, int64_t now)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    td_outbox_rec o;
    td_outbox_fill(&o, dc, "USER", &dc->d, "", NULL, now, now);
    td_strlcpy(o.message, "OTP", sizeof o.message);
    td_strlcpy(o.method_id, cmd->method_id, sizeof o.method_id);
    if (td_seal(cmd->w.svc->cfg->master_key, (const uint8_t *)cmd->otp, strlen(cmd->otp), &sealed, &len) ||
        len > sizeof o.secret_sealed) {
        free(sealed);
        return TD_ST_INTERNAL;
    }
    memcpy(o.secret_sealed, sealed, len);
    o.secret_len = len;
    free(sealed);
    return OPS(cmd->w.svc)->outbox_insert(c, &o);
}

static td_st send_otp(td_conn *c, td_send_otp *cmd, const td_dcard_rec *dc)
{
    td_write *w = &cmd->w;
    int64_t now = td_now_ms();
    td_card_policy p;
    bool ok = false;
    if (dc->d.state != TD_DC_PENDING_IDV) {
        td_fail(&w->err, TD_E_NOT_ALLOWED_IN_STATE, "digital card %s is %s: OTPs go only to a card in step-up", dc->id,
                td_dcard_state_name(dc->d.state));
        return TD_ST_OK;
    }
    if (!offered_otp_method(dc, cmd->method_id, cmd->masked_target, sizeof cmd->masked_target)) {
        td_fail(&w->err, TD_E_INVALID_ARGUMENT, "methodId %.24s is not an OTP method offered to this digital card",
                cmd->method_id);
        return TD_ST_OK;
    }
    td_st st = td_card_policy_load(w->svc, c, dc->issuer_id, &p);
    if (st == TD_ST_OK) st = otp_rate_ok(c, cmd, &p, now, &ok);
    if (st != TD_ST_OK) return st;
    if (!ok) {
        td_fail(&w->err, TD_E_RATE_LIMITED, "too many OTP deliveries for this digital card; retry in %lld s",
                (long long)cmd->retry_after_s);
        return TD_ST_OK;
    }
    return queue_otp(c, cmd, dc, now);
}

static td_st run_send_otp(td_conn *c, td_write *w)
{
    td_send_otp *cmd = (td_send_otp *)w;
    td_dcard_rec dc = {0};
    td_st st = read_own_dcard(c, w, cmd->issuer_id, cmd->digital_card_id, &dc);
    if (st == TD_ST_OK) {
        st = send_otp(c, cmd, &dc);
        td_dcard_rec_free(&dc);
    } else if (st == TD_ST_NOT_FOUND) {
        st = TD_ST_OK; /* the refusal is in w->err */
    }
    td_wipe(cmd->otp, sizeof cmd->otp);
    return st;
}

static void dispose_send_otp(td_write *w)
{
    td_send_otp *cmd = (td_send_otp *)w;
    td_wipe(cmd->otp, sizeof cmd->otp);
}

void td_svc_send_otp(td_svc *svc, td_send_otp *cmd)
{
    cmd->w.run = run_send_otp;
    if (!cmd->w.dispose) cmd->w.dispose = dispose_send_otp;
    td_svc_submit(svc, &cmd->w);
}

/* ================= lifecycle events ================= */

/* The answer stored for (source, event id), if the event was seen before. */
static td_st replay_event(td_conn *c, td_ingest_event *cmd, bool *replayed)
{
    char *answer = NULL;
    td_st st =
        OPS(cmd->w.svc)->dcard_event_answer(c, cmd->issuer_id, td_source_name(cmd->source), cmd->event_id, &answer);
    *replayed = false;
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    free(cmd->answer_json);
    cmd->answer_json = answer;
    cmd->duplicate = *replayed = true;
    return answer ? TD_ST_OK : TD_ST_INTERNAL;
}

/* Who asked, as operation records name it. */
static const char *requestor_of(td_source s)
{
    switch (s) {
    case TD_SRC_WALLET: return "USER";
    case TD_SRC_ISSUER: return "ISSUER";
    default: return "TSP";
    }
}

static const char *result_name(td_dcard_outcome o)
{
    switch (o) {
    case TD_DC_APPLIED: return "APPLIED";
    case TD_DC_NO_OP_ALREADY: return "ALREADY";
    case TD_DC_STORED_UNKNOWN: return "STORED";
    default: return "IGNORED";
    }
}

static char *event_answer(const td_ingest_event *cmd, const td_dcard_result *res, const char *op_id)
{
    json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:I}", "eventId", cmd->event_id, "digitalCardId", cmd->digital_card_id,
                          "result", result_name(res->outcome), "state", td_dcard_state_name(res->rec.state), "sequence",
                          (json_int_t)res->rec.seq);
    if (!v) return NULL;
    if (op_id[0]) json_object_set_new(v, "operationId", json_string(op_id));
    if (res->outcome == TD_DC_IGNORED_LATE) json_object_set_new(v, "reason", json_string(td_dcard_why_name(res->why)));
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

/* What was received besides the type, kept with the event. */
static char *event_detail(const td_ingest_event *cmd)
{
    json_t *v = json_object();
    json_t *details = cmd->detail_json ? json_loads(cmd->detail_json, 0, NULL) : NULL;
    if (!v) return NULL;
    if (cmd->reason_code[0]) json_object_set_new(v, "reasonCode", json_string(cmd->reason_code));
    if (cmd->suspended_by[0]) json_object_set_new(v, "suspendedBy", json_string(cmd->suspended_by));
    if (details) json_object_set_new(v, "details", details);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

/* The operation a change is recorded under, known before the answer that
 * names it is stored: the enrolment's for DIGITIZE, a new one otherwise. */
static void event_operation_id(const td_dcard_rec *dc, const td_dcard_result *res, char op_id[65])
{
    op_id[0] = '\0';
    if (res->outcome != TD_DC_APPLIED || res->notice.op == TD_OP_NONE) return;
    if (res->notice.op == TD_OP_DIGITIZE)
        td_strlcpy(op_id, dc->digitize_op_id, 65);
    else
        td_new_operation_id(op_id);
}

static td_st apply_event(td_conn *c, td_ingest_event *cmd, td_dcard_rec *dc, int64_t now)
{
    td_svc *svc = cmd->w.svc;
    td_dcard_input in = {.type = td_dcard_ev_parse(cmd->type),
                         .source = cmd->source,
                         .origin = TD_ORIGIN_EVENT,
                         .party = td_party_from_mdes(cmd->suspended_by[0] ? cmd->suspended_by : NULL),
                         .event_ms = cmd->event_ms,
                         .now_ms = now};
    td_dcard_result res = td_dcard_apply(&dc->d, &in);
    td_card_policy p;
    char op_id[65];
    td_st st = TD_ST_OK;
    /* Of the policy an event needs only notifyCancellation; reading and
     * parsing it for every event was 10-13 % of the writer's time. */
    if (res.effects & TD_FX_MSG_CANCELLATION) st = td_card_policy_load(svc, c, dc->issuer_id, &p);
    if (st != TD_ST_OK) return st;
    event_operation_id(dc, &res, op_id);
    char *answer = event_answer(cmd, &res, op_id);
    char *detail = event_detail(cmd);
    td_apply_ctx a = {.dc = dc,
                      .in = &in,
                      .res = &res,
                      .event_type = cmd->type,
                      .event_id = cmd->event_id,
                      .operation_id = op_id,
                      .requestor_type = requestor_of(cmd->source),
                      .reason = "",
                      .reason_code = cmd->reason_code,
                      .detail_json = detail,
                      .answer_json = answer,
                      .policy = (res.effects & TD_FX_MSG_CANCELLATION) ? &p : NULL};
    st = answer && detail ? td_dcard_apply_write(svc, c, &a, NULL) : TD_ST_INTERNAL;
    free(detail);
    if (st == TD_ST_OK) {
        free(cmd->answer_json);
        cmd->answer_json = answer;
        answer = NULL;
    }
    free(answer);
    return st;
}

static td_st run_ingest_event(td_conn *c, td_write *w)
{
    td_ingest_event *cmd = (td_ingest_event *)w;
    td_dcard_rec dc = {0};
    bool replayed;
    td_st st = replay_event(c, cmd, &replayed);
    if (st != TD_ST_OK || replayed) return st;
    st = read_own_dcard(c, w, cmd->issuer_id, cmd->digital_card_id, &dc);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK; /* the refusal is in w->err */
    if (st != TD_ST_OK) return st;
    st = apply_event(c, cmd, &dc, td_now_ms());
    td_dcard_rec_free(&dc);
    /* The same event id recorded meanwhile: the event append is the first
     * write, so nothing was written; answer as the first delivery did. */
    if (st == TD_ST_CONFLICT) {
        st = replay_event(c, cmd, &replayed);
        if (st == TD_ST_OK && !replayed) st = TD_ST_CONFLICT;
    }
    return st;
}

static void dispose_ingest_event(td_write *w)
{
    td_ingest_event *cmd = (td_ingest_event *)w;
    free(cmd->detail_json);
    free(cmd->answer_json);
    cmd->detail_json = cmd->answer_json = NULL;
}

/* A duplicate is answered from a read connection when it can be: it writes
 * nothing, so it need not wait for a place in the writer's next commit. The
 * writer still checks (the first delivery may be committing right now). With
 * an Idempotency-Key the write path runs, so that the key is recorded. */
static bool answer_duplicate_early(td_svc *svc, td_ingest_event *cmd)
{
    td_conn *c = cmd->w.idem ? NULL : svc->store->reader(svc->store);
    bool replayed = false;
    cmd->w.svc = svc;
    if (!c || replay_event(c, cmd, &replayed) != TD_ST_OK || !replayed) return false;
    cmd->w.render(&cmd->w);
    if (!cmd->w.body) td_fail(&cmd->w.err, TD_E_INTERNAL, "out of memory");
    cmd->w.complete(&cmd->w);
    return true;
}

void td_svc_ingest_event(td_svc *svc, td_ingest_event *cmd)
{
    cmd->w.run = run_ingest_event;
    if (!cmd->w.dispose) cmd->w.dispose = dispose_ingest_event;
    if (answer_duplicate_early(svc, cmd)) return;
    td_svc_submit(svc, &cmd->w);
}
