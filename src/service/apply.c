/* apply.c — writing an engine outcome for a digital card inside the writer's
 * transaction: its event, the record, the operation, the outbox rows it owes
 * and the end of a step-up session; and starting a step-up session's timers.
 * Every use case that moves a digital card (events, issuer operations, the
 * step-up timer) goes through td_dcard_apply_write, so the rows a change owes
 * are the same whoever started it. docs/cards.md §1.3 lists them. */
#include <string.h>

#include "service/card_rows.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)

/* ---- rows ---- */

void td_op_fill(td_operation_rec *o, const td_dcard_rec *dc, const td_card_notice *n, const char *op_id,
                const char *requestor_type, const char *reason, const char *reason_code, const char *correlation_id,
                int64_t now_ms)
{
    memset(o, 0, sizeof *o);
    td_strlcpy(o->id, op_id, sizeof o->id);
    td_strlcpy(o->issuer_id, dc->issuer_id, sizeof o->issuer_id);
    td_strlcpy(o->digital_card_id, dc->id, sizeof o->digital_card_id);
    td_strlcpy(o->card_id, dc->card_id, sizeof o->card_id);
    td_strlcpy(o->operation, td_card_op_name(n->op), sizeof o->operation);
    td_strlcpy(o->status, td_op_status_name(n->status), sizeof o->status);
    td_strlcpy(o->requestor_type, requestor_type ? requestor_type : "", sizeof o->requestor_type);
    td_strlcpy(o->reason, reason ? reason : "", sizeof o->reason);
    td_strlcpy(o->reason_code, reason_code ? reason_code : "", sizeof o->reason_code);
    if (n->op == TD_OP_DIGITIZE && n->status == TD_OPS_FAILED)
        td_strlcpy(o->error_code, td_digitize_reason_name(n->reason), sizeof o->error_code);
    td_strlcpy(o->correlation_id, correlation_id ? correlation_id : "", sizeof o->correlation_id);
    o->start_ms = now_ms;
    o->end_ms = n->status == TD_OPS_PENDING ? 0 : now_ms;
}

void td_outbox_fill(td_outbox_rec *o, const td_dcard_rec *dc, const char *channel, const td_dcard *after,
                    const char *op_id, const char *correlation_id, int64_t event_ms, int64_t now_ms)
{
    memset(o, 0, sizeof *o);
    td_strlcpy(o->issuer_id, dc->issuer_id, sizeof o->issuer_id);
    td_strlcpy(o->channel, channel, sizeof o->channel);
    td_strlcpy(o->digital_card_id, dc->id, sizeof o->digital_card_id);
    td_strlcpy(o->card_id, dc->card_id, sizeof o->card_id);
    o->dcard_seq = after->seq;
    td_strlcpy(o->operation_id, op_id ? op_id : "", sizeof o->operation_id);
    td_strlcpy(o->correlation_id, correlation_id && correlation_id[0] ? correlation_id : dc->correlation_id,
               sizeof o->correlation_id);
    td_strlcpy(o->wallet_provider_id, dc->wallet_provider_id, sizeof o->wallet_provider_id);
    td_strlcpy(o->token_storage_id, dc->token_storage_id, sizeof o->token_storage_id);
    td_strlcpy(o->last4, dc->last4, sizeof o->last4);
    o->is_primary = dc->is_primary;
    o->dcard_state = (int)after->state;
    o->event_ms = event_ms ? event_ms : now_ms;
    o->created_ms = now_ms;
    o->due_ms = now_ms;
    td_strlcpy(o->state, "PENDING", sizeof o->state);
}

td_st td_outbox_notice(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const td_card_notice *n, const char *op_id,
                       const td_dcard *after, const char *correlation_id, int64_t event_ms, int64_t now_ms)
{
    if (n->op == TD_OP_NONE) return TD_ST_OK;
    td_outbox_rec o;
    td_outbox_fill(&o, dc, "ISSUER", after, op_id, correlation_id, event_ms, now_ms);
    td_strlcpy(o.operation, td_card_op_name(n->op), sizeof o.operation);
    td_strlcpy(o.status, td_op_status_name(n->status), sizeof o.status);
    if (n->op == TD_OP_DIGITIZE && n->status == TD_OPS_FAILED)
        td_strlcpy(o.error_code, td_digitize_reason_name(n->reason), sizeof o.error_code);
    td_strlcpy(o.source, td_source_name(n->source), sizeof o.source);
    return OPS(svc)->outbox_insert(c, &o);
}

td_st td_outbox_message(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const char *message, const char *op_id,
                        const td_dcard *after, int64_t now_ms)
{
    td_outbox_rec o;
    td_outbox_fill(&o, dc, "USER", after, op_id, NULL, now_ms, now_ms);
    td_strlcpy(o.message, message, sizeof o.message);
    return OPS(svc)->outbox_insert(c, &o);
}

/* ---- applying one outcome ---- */

static int64_t now_of(const td_apply_ctx *a)
{
    return a->in->now_ms ? a->in->now_ms : td_now_ms();
}

static int64_t event_time_of(const td_apply_ctx *a)
{
    return a->in->event_ms ? a->in->event_ms : now_of(a);
}

static bool same_dcard(const td_dcard *x, const td_dcard *y)
{
    return x->state == y->state && x->suspended_by == y->suspended_by && x->last_event_ms == y->last_event_ms &&
           x->seq == y->seq && x->stepup_open == y->stepup_open && x->idv_failures == y->idv_failures &&
           x->revivable_until_ms == y->revivable_until_ms;
}

/* The input appended to the card's events. First of all the writes: a
 * duplicate event id (the dedupe index) or a sequence number taken meanwhile
 * (the primary key) is then a CONFLICT with nothing written yet. */
static td_st append_event(td_svc *svc, td_conn *c, const td_apply_ctx *a)
{
    const td_dcard_result *res = a->res;
    td_dcard_event_rec ev = {.seq = res->rec.seq, .event_ms = a->in->event_ms, .time_ms = now_of(a)};
    td_strlcpy(ev.digital_card_id, a->dc->id, sizeof ev.digital_card_id);
    td_strlcpy(ev.issuer_id, a->dc->issuer_id, sizeof ev.issuer_id);
    td_strlcpy(ev.event_id, a->event_id ? a->event_id : "", sizeof ev.event_id);
    td_strlcpy(ev.source, td_source_name(a->in->source), sizeof ev.source);
    td_strlcpy(ev.type, a->event_type && a->event_type[0] ? a->event_type : td_dcard_ev_name(a->in->type),
               sizeof ev.type);
    td_strlcpy(ev.outcome, td_dcard_outcome_name(res->outcome), sizeof ev.outcome);
    if (res->why != TD_DCW_NONE) td_strlcpy(ev.why, td_dcard_why_name(res->why), sizeof ev.why);
    ev.detail_json = a->detail_json;
    ev.answer_json = a->answer_json;
    return OPS(svc)->dcard_event_append(c, &ev);
}

/* The record as the engine left it, conditioned on the sequence it read. */
static td_st update_record(td_svc *svc, td_conn *c, td_apply_ctx *a)
{
    if (same_dcard(&a->dc->d, &a->res->rec)) return TD_ST_OK;
    int64_t expect = a->dc->d.seq;
    td_dcard_rec next = *a->dc;
    next.d = a->res->rec;
    next.updated_ms = now_of(a);
    td_st st = OPS(svc)->dcard_update(c, &next, expect);
    if (st == TD_ST_OK) {
        a->dc->d = next.d;
        a->dc->updated_ms = next.updated_ms;
    }
    return st;
}

/* A DIGITIZE outcome completes the enrolment's operation, under the id the
 * tokenization answer gave. A record from before operations were kept has
 * none to update: it gets one. */
static td_st complete_digitize(td_svc *svc, td_conn *c, const td_apply_ctx *a)
{
    td_operation_rec o;
    td_op_fill(&o, a->dc, &a->res->notice, a->dc->digitize_op_id, a->requestor_type, a->reason, a->reason_code,
               a->dc->correlation_id, now_of(a));
    td_st st = OPS(svc)->op_update(c, &o);
    if (st == TD_ST_NOT_FOUND) st = OPS(svc)->op_insert(c, &o);
    return st;
}

static td_st record_operation(td_svc *svc, td_conn *c, const td_apply_ctx *a, const td_card_notice *n, char op_id[65])
{
    if (n->op == TD_OP_DIGITIZE) {
        td_strlcpy(op_id, a->dc->digitize_op_id, 65);
        return complete_digitize(svc, c, a);
    }
    if (a->operation_id && a->operation_id[0])
        td_strlcpy(op_id, a->operation_id, 65);
    else
        td_new_operation_id(op_id);
    td_operation_rec o;
    td_op_fill(&o, a->dc, n, op_id, a->requestor_type, a->reason, a->reason_code, a->correlation_id, now_of(a));
    return OPS(svc)->op_insert(c, &o);
}

/* End-user messages the effects owe; a cancellation only if the issuer wants it. */
static td_st owe_messages(td_svc *svc, td_conn *c, const td_apply_ctx *a, const char *op_id)
{
    unsigned fx = a->res->effects;
    const td_dcard *after = &a->res->rec;
    int64_t now = now_of(a);
    td_st st = TD_ST_OK;
    if (fx & TD_FX_MSG_ACTIVATION) st = td_outbox_message(svc, c, a->dc, "ACTIVATION", op_id, after, now);
    if (st == TD_ST_OK && (fx & TD_FX_MSG_DELETION))
        st = td_outbox_message(svc, c, a->dc, "DELETION", op_id, after, now);
    if (st == TD_ST_OK && (fx & TD_FX_MSG_CANCELLATION) && (!a->policy || a->policy->notify_cancellation))
        st = td_outbox_message(svc, c, a->dc, "CANCELLATION", op_id, after, now);
    return st;
}

/* The session is over: nothing more to deliver or to fire for it. */
static td_st stop_stepup(td_svc *svc, td_conn *c, const td_dcard_rec *dc)
{
    int n = 0;
    td_st st = OPS(svc)->outbox_cancel(c, dc->issuer_id, dc->id, "OTP,REMINDER", &n);
    if (st == TD_ST_OK) st = OPS(svc)->timer_cancel_dcard(c, dc->issuer_id, dc->id, &n);
    return st;
}

/* The operation a command that found its target already reached still
 * answers with (docs/network.md: recorded SUCCESSFUL, nothing else). */
static td_card_op op_of_command(td_dcard_ev type)
{
    switch (type) {
    case TD_EV_SUSPEND: return TD_OP_SUSPEND;
    case TD_EV_RESUME: return TD_OP_RESUME;
    case TD_EV_DELETE: return TD_OP_DELETE;
    default: return TD_OP_NONE;
    }
}

static td_st record_noop_command(td_svc *svc, td_conn *c, const td_apply_ctx *a, char op_id[65])
{
    td_card_notice n = {.op = op_of_command(a->in->type), .status = TD_OPS_SUCCESSFUL, .source = a->in->source};
    if (n.op == TD_OP_NONE || !a->operation_id || !a->operation_id[0]) return TD_ST_OK;
    return record_operation(svc, c, a, &n, op_id);
}

/* The operation, the notice and the messages a change owes, and the end of
 * step-up. */
static td_st owe_effects(td_svc *svc, td_conn *c, const td_apply_ctx *a, char op_id[65])
{
    const td_dcard_result *res = a->res;
    td_st st = TD_ST_OK;
    if (res->notice.op != TD_OP_NONE) {
        st = record_operation(svc, c, a, &res->notice, op_id);
        if (st == TD_ST_OK)
            st = td_outbox_notice(svc, c, a->dc, &res->notice, op_id, &res->rec, a->correlation_id, event_time_of(a),
                                  now_of(a));
    }
    if (st == TD_ST_OK) st = owe_messages(svc, c, a, op_id);
    if (st == TD_ST_OK && (res->effects & TD_FX_STOP_STEP_UP)) st = stop_stepup(svc, c, a->dc);
    return st;
}

td_st td_dcard_apply_write(td_svc *svc, td_conn *c, td_apply_ctx *a, char op_out[65])
{
    char op_id[65] = "";
    td_st st = TD_ST_OK;
    const td_dcard_result *res = a->res;
    if (op_out) op_out[0] = '\0';
    if (res->outcome == TD_DC_REFUSED) return TD_ST_OK;
    if (a->in->origin == TD_ORIGIN_COMMAND && res->outcome == TD_DC_NO_OP_ALREADY) {
        st = record_noop_command(svc, c, a, op_id);
    } else {
        if (res->record_event) st = append_event(svc, c, a);
        if (st == TD_ST_OK) st = update_record(svc, c, a);
        if (st == TD_ST_OK && res->outcome == TD_DC_APPLIED) st = owe_effects(svc, c, a, op_id);
    }
    if (st == TD_ST_OK && op_out) td_strlcpy(op_out, op_id, 65);
    return st;
}

/* ---- step-up ---- */

static td_st add_timer(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const char *kind, int n, int64_t due_ms)
{
    td_timer_rec t = {.n = n, .due_ms = due_ms};
    td_strlcpy(t.issuer_id, dc->issuer_id, sizeof t.issuer_id);
    td_strlcpy(t.digital_card_id, dc->id, sizeof t.digital_card_id);
    td_strlcpy(t.kind, kind, sizeof t.kind);
    td_strlcpy(t.state, "PENDING", sizeof t.state);
    return OPS(svc)->timer_insert(c, &t);
}

/* Reminders while the session still runs (one due at or after the end would
 * only race the expiry), then the expiry itself. */
td_st td_stepup_schedule(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const td_card_policy *p, int64_t now_ms)
{
    int64_t deadline = dc->stepup_deadline_ms ? dc->stepup_deadline_ms : now_ms + p->session_ms;
    td_st st = TD_ST_OK;
    for (int n = 1; st == TD_ST_OK && n <= p->max_reminders; n++) {
        int64_t due = now_ms + p->first_reminder_ms + (int64_t)(n - 1) * p->reminder_every_ms;
        if (due >= deadline) break;
        st = add_timer(svc, c, dc, "REMINDER", n, due);
    }
    if (st == TD_ST_OK) st = add_timer(svc, c, dc, "STEPUP_EXPIRE", 0, deadline);
    return st;
}
