/* card_rows.h — service-internal helpers shared by the network tokenization
 * use cases (apply.c, network.c, timers.c): filling and writing the rows an
 * engine outcome owes — the operation record and the outbox rows. Not for
 * faces; docs/network.md describes the rows. */
#ifndef TD_CARD_ROWS_H
#define TD_CARD_ROWS_H

#include "service/cards.h"

/* An operation record about a digital card: id, issuer, digital card, card,
 * operation and status from the notice (errorCode for DIGITIZE FAILED), the
 * requestor, start = now, end = now unless PENDING. */
void td_op_fill(td_operation_rec *o, const td_dcard_rec *dc, const td_card_notice *n, const char *op_id,
                const char *requestor_type, const char *reason, const char *reason_code, const char *correlation_id,
                int64_t now_ms);

/* What an outbox row about a digital card always carries: the issuer, the
 * digital card and card, the operation, the enrolment session, the wallet,
 * times (due now), state PENDING, and the card as the change left it (`after`,
 * the engine's view after the change: its sequence and state; dc's other
 * fields do not change), so that delivery builds the notification from the
 * row alone. */
void td_outbox_fill(td_outbox_rec *o, const td_dcard_rec *dc, const char *channel, const td_dcard *after,
                    const char *op_id, const char *correlation_id, int64_t event_ms, int64_t now_ms);

/* The ISSUER row a notice owes (nothing when n->op is TD_OP_NONE). */
td_st td_outbox_notice(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const td_card_notice *n, const char *op_id,
                       const td_dcard *after, const char *correlation_id, int64_t event_ms, int64_t now_ms);

/* A USER row with this message (ACTIVATION, REMINDER, DELETION, CANCELLATION). */
td_st td_outbox_message(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const char *message, const char *op_id,
                        const td_dcard *after, int64_t now_ms);

#endif
