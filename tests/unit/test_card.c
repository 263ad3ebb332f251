/* test_card.c — unit tests for the digital card machine (core/card.c): every
 * (state × input type × source × origin) in one table, then the rules that
 * need several steps (multi-party suspension, late and stale events, repeats,
 * unknown types, step-up endings), a randomised run checking the invariants,
 * the physical card and its cascade, and the enum names. Pure: no store, no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/card.h"

#define T0 1700000000000LL /* the view's newest accepted event */
#define T1 1700000060000LL /* the input's time: newer */
#define SEQ 5

/* ---- the base record for each state ---- */

static td_dcard view_of(td_dcard_state st)
{
    td_dcard v;
    memset(&v, 0, sizeof v);
    v.state = st;
    v.seq = SEQ;
    v.last_event_ms = T0;
    v.stepup_open = st == TD_DC_PENDING_IDV;
    /* A suspension held by the wallet alone: a wallet repeat is a no-op, a
     * TSP or issuer suspend joins it, only the wallet can lift it. */
    if (st == TD_DC_SUSPENDED) v.suspended_by = TD_PARTY_WALLET;
    return v;
}

static td_dcard_input input(td_dcard_ev ev, td_source src, td_origin o, int64_t at)
{
    td_dcard_input in;
    memset(&in, 0, sizeof in);
    in.type = ev;
    in.source = src;
    in.origin = o;
    in.party = TD_PARTY_NONE;
    in.event_ms = at;
    in.now_ms = at ? at : T1;
    return in;
}

/* Records compared field by field: struct copies need not copy padding. */
static bool same_rec(const td_dcard *a, const td_dcard *b)
{
    return a->state == b->state && a->suspended_by == b->suspended_by && a->last_event_ms == b->last_event_ms &&
           a->seq == b->seq && a->stepup_open == b->stepup_open && a->idv_failures == b->idv_failures &&
           a->revivable_until_ms == b->revivable_until_ms;
}

/* ---- the table ---- */

/* Short names so that one row fits on a line. */
#define PEND TD_DC_PENDING_IDV
#define ACT TD_DC_ACTIVE
#define SUSP TD_DC_SUSPENDED
#define DEL TD_DC_DELETED
#define DECL TD_DC_DECLINED
#define EXP TD_DC_EXPIRED

#define E_ACTV TD_EV_ACTIVATE
#define E_IDVOK TD_EV_IDV_SUCCESS
#define E_IDVKO TD_EV_IDV_FAILED
#define E_SUSP TD_EV_SUSPEND
#define E_RESM TD_EV_RESUME
#define E_DEL TD_EV_DELETE
#define E_DAPP TD_EV_DELETE_FROM_APP
#define E_EXPR TD_EV_EXPIRE
#define E_SUEX TD_EV_STEPUP_EXPIRE
#define E_UNKN TD_EV_UNKNOWN

#define W TD_SRC_WALLET
#define T TD_SRC_TSP
#define I TD_SRC_ISSUER

#define EV TD_ORIGIN_EVENT
#define CMD TD_ORIGIN_COMMAND

#define APPL TD_DC_APPLIED
#define NOOP TD_DC_NO_OP_ALREADY
#define IGN TD_DC_IGNORED_LATE
#define REF TD_DC_REFUSED
#define UNK TD_DC_STORED_UNKNOWN

#define Y_ TD_DCW_NONE
#define Y_NAC TD_DCW_NOT_A_COMMAND
#define Y_PIDV TD_DCW_PENDING_IDV
#define Y_DEL TD_DCW_DELETED
#define Y_DECL TD_DCW_DECLINED
#define Y_EXP TD_DCW_EXPIRED
#define Y_AACT TD_DCW_ALREADY_ACTIVATED
#define Y_OTHR TD_DCW_OTHER_PARTY
#define Y_NPERM TD_DCW_NOT_PERMITTED

/* The notice a row expects. */
typedef enum {
    N_NONE,
    N_DIG_OK,
    N_DIG_USER,
    N_DIG_ISSUER,
    N_DIG_EXPIRED,
    N_SUSP,
    N_RESM,
    N_DEL,
    N_DAPP,
    N_EXPR
} notice_k;

#define FX_STOP TD_FX_STOP_STEP_UP
#define FX_REEN TD_FX_ALLOW_REENROLMENT
#define FX_TSP TD_FX_TSP_CALL
#define FX_MACT TD_FX_MSG_ACTIVATION
#define FX_MDEL TD_FX_MSG_DELETION
#define FX_MCAN TD_FX_MSG_CANCELLATION

#define F_ACTIVATED (FX_STOP | FX_MACT)
#define F_CANCEL_USER (FX_STOP | FX_REEN | FX_MCAN)
#define F_CANCEL_ISSUER (FX_STOP | FX_REEN)
#define F_DELETED (FX_REEN | FX_MDEL)

struct row {
    td_dcard_state st;
    td_dcard_ev ev;
    td_origin o;
    td_source src;
    td_dcard_outcome out;
    td_dcard_why why;
    td_dcard_state after;
    notice_k notice;
    unsigned fx;
};

static const struct row ROWS[] = {
    /* ---- events on PENDING_IDV ---- */
    {PEND, E_ACTV, EV, W, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_ACTV, EV, T, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_ACTV, EV, I, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_IDVOK, EV, W, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_IDVOK, EV, T, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_IDVOK, EV, I, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_IDVKO, EV, W, APPL, Y_, PEND, N_NONE, 0},
    {PEND, E_IDVKO, EV, T, APPL, Y_, PEND, N_NONE, 0},
    {PEND, E_IDVKO, EV, I, APPL, Y_, PEND, N_NONE, 0},
    {PEND, E_SUSP, EV, W, IGN, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_SUSP, EV, T, IGN, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_SUSP, EV, I, IGN, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_RESM, EV, W, IGN, Y_NPERM, PEND, N_NONE, 0},
    {PEND, E_RESM, EV, T, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_RESM, EV, I, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED},
    {PEND, E_DEL, EV, W, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER},
    {PEND, E_DEL, EV, T, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER},
    {PEND, E_DEL, EV, I, APPL, Y_, DEL, N_DIG_ISSUER, F_CANCEL_ISSUER},
    {PEND, E_DAPP, EV, W, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER},
    {PEND, E_DAPP, EV, T, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER},
    {PEND, E_DAPP, EV, I, APPL, Y_, DEL, N_DIG_ISSUER, F_CANCEL_ISSUER},
    {PEND, E_EXPR, EV, W, APPL, Y_, EXP, N_DIG_EXPIRED, FX_STOP | FX_REEN},
    {PEND, E_EXPR, EV, T, APPL, Y_, EXP, N_DIG_EXPIRED, FX_STOP | FX_REEN},
    {PEND, E_EXPR, EV, I, APPL, Y_, EXP, N_DIG_EXPIRED, FX_STOP | FX_REEN},
    {PEND, E_SUEX, EV, W, APPL, Y_, DEL, N_DIG_EXPIRED, FX_STOP | FX_REEN | FX_TSP},
    {PEND, E_SUEX, EV, T, APPL, Y_, DEL, N_DIG_EXPIRED, FX_STOP | FX_REEN | FX_TSP},
    {PEND, E_SUEX, EV, I, APPL, Y_, DEL, N_DIG_EXPIRED, FX_STOP | FX_REEN | FX_TSP},
    {PEND, E_UNKN, EV, W, UNK, Y_, PEND, N_NONE, 0},
    {PEND, E_UNKN, EV, T, UNK, Y_, PEND, N_NONE, 0},
    {PEND, E_UNKN, EV, I, UNK, Y_, PEND, N_NONE, 0},
    /* ---- events on ACTIVE ---- */
    {ACT, E_ACTV, EV, W, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_ACTV, EV, T, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_ACTV, EV, I, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_IDVOK, EV, W, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_IDVOK, EV, T, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_IDVOK, EV, I, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_IDVKO, EV, W, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_IDVKO, EV, T, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_IDVKO, EV, I, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_SUSP, EV, W, APPL, Y_, SUSP, N_SUSP, 0},
    {ACT, E_SUSP, EV, T, APPL, Y_, SUSP, N_SUSP, 0},
    {ACT, E_SUSP, EV, I, APPL, Y_, SUSP, N_SUSP, 0},
    {ACT, E_RESM, EV, W, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_RESM, EV, T, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_RESM, EV, I, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_DEL, EV, W, APPL, Y_, DEL, N_DEL, F_DELETED},
    {ACT, E_DEL, EV, T, APPL, Y_, DEL, N_DEL, F_DELETED},
    {ACT, E_DEL, EV, I, APPL, Y_, DEL, N_DEL, F_DELETED},
    {ACT, E_DAPP, EV, W, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {ACT, E_DAPP, EV, T, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {ACT, E_DAPP, EV, I, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {ACT, E_EXPR, EV, W, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {ACT, E_EXPR, EV, T, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {ACT, E_EXPR, EV, I, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {ACT, E_SUEX, EV, W, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_SUEX, EV, T, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_SUEX, EV, I, IGN, Y_AACT, ACT, N_NONE, 0},
    {ACT, E_UNKN, EV, W, UNK, Y_, ACT, N_NONE, 0},
    {ACT, E_UNKN, EV, T, UNK, Y_, ACT, N_NONE, 0},
    {ACT, E_UNKN, EV, I, UNK, Y_, ACT, N_NONE, 0},
    /* ---- events on SUSPENDED (by the wallet) ---- */
    {SUSP, E_ACTV, EV, W, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_ACTV, EV, T, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_ACTV, EV, I, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVOK, EV, W, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVOK, EV, T, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVOK, EV, I, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVKO, EV, W, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVKO, EV, T, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_IDVKO, EV, I, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_SUSP, EV, W, NOOP, Y_, SUSP, N_NONE, 0},
    {SUSP, E_SUSP, EV, T, APPL, Y_, SUSP, N_SUSP, 0},
    {SUSP, E_SUSP, EV, I, APPL, Y_, SUSP, N_SUSP, 0},
    {SUSP, E_RESM, EV, W, APPL, Y_, ACT, N_RESM, 0},
    {SUSP, E_RESM, EV, T, IGN, Y_OTHR, SUSP, N_NONE, 0},
    {SUSP, E_RESM, EV, I, IGN, Y_OTHR, SUSP, N_NONE, 0},
    {SUSP, E_DEL, EV, W, APPL, Y_, DEL, N_DEL, F_DELETED},
    {SUSP, E_DEL, EV, T, APPL, Y_, DEL, N_DEL, F_DELETED},
    {SUSP, E_DEL, EV, I, APPL, Y_, DEL, N_DEL, F_DELETED},
    {SUSP, E_DAPP, EV, W, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {SUSP, E_DAPP, EV, T, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {SUSP, E_DAPP, EV, I, APPL, Y_, DEL, N_DAPP, F_DELETED},
    {SUSP, E_EXPR, EV, W, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {SUSP, E_EXPR, EV, T, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {SUSP, E_EXPR, EV, I, APPL, Y_, EXP, N_EXPR, FX_REEN},
    {SUSP, E_SUEX, EV, W, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_SUEX, EV, T, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_SUEX, EV, I, IGN, Y_AACT, SUSP, N_NONE, 0},
    {SUSP, E_UNKN, EV, W, UNK, Y_, SUSP, N_NONE, 0},
    {SUSP, E_UNKN, EV, T, UNK, Y_, SUSP, N_NONE, 0},
    {SUSP, E_UNKN, EV, I, UNK, Y_, SUSP, N_NONE, 0},
    /* ---- events on DELETED: nothing moves it back ---- */
    {DEL, E_ACTV, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_ACTV, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_ACTV, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVOK, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVOK, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVOK, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVKO, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVKO, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_IDVKO, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUSP, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUSP, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUSP, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_DEL, EV, W, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DEL, EV, T, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DEL, EV, I, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DAPP, EV, W, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DAPP, EV, T, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DAPP, EV, I, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_EXPR, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_EXPR, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_EXPR, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUEX, EV, W, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUEX, EV, T, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUEX, EV, I, IGN, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_UNKN, EV, W, UNK, Y_, DEL, N_NONE, 0},
    {DEL, E_UNKN, EV, T, UNK, Y_, DEL, N_NONE, 0},
    {DEL, E_UNKN, EV, I, UNK, Y_, DEL, N_NONE, 0},
    /* ---- events on DECLINED: unusable for anything ---- */
    {DECL, E_ACTV, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_ACTV, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_ACTV, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVOK, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVOK, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVOK, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVKO, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVKO, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_IDVKO, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUSP, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUSP, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUSP, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DAPP, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DAPP, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DAPP, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_EXPR, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_EXPR, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_EXPR, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUEX, EV, W, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUEX, EV, T, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUEX, EV, I, IGN, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_UNKN, EV, W, UNK, Y_, DECL, N_NONE, 0},
    {DECL, E_UNKN, EV, T, UNK, Y_, DECL, N_NONE, 0},
    {DECL, E_UNKN, EV, I, UNK, Y_, DECL, N_NONE, 0},
    /* ---- events on EXPIRED: only a delete applies ---- */
    {EXP, E_ACTV, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_ACTV, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_ACTV, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVOK, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVOK, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVOK, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVKO, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVKO, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_IDVKO, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUSP, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUSP, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUSP, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_DEL, EV, W, APPL, Y_, DEL, N_DEL, FX_REEN},
    {EXP, E_DEL, EV, T, APPL, Y_, DEL, N_DEL, FX_REEN},
    {EXP, E_DEL, EV, I, APPL, Y_, DEL, N_DEL, FX_REEN},
    {EXP, E_DAPP, EV, W, APPL, Y_, DEL, N_DAPP, FX_REEN},
    {EXP, E_DAPP, EV, T, APPL, Y_, DEL, N_DAPP, FX_REEN},
    {EXP, E_DAPP, EV, I, APPL, Y_, DEL, N_DAPP, FX_REEN},
    {EXP, E_EXPR, EV, W, NOOP, Y_, EXP, N_NONE, 0},
    {EXP, E_EXPR, EV, T, NOOP, Y_, EXP, N_NONE, 0},
    {EXP, E_EXPR, EV, I, NOOP, Y_, EXP, N_NONE, 0},
    {EXP, E_SUEX, EV, W, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUEX, EV, T, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUEX, EV, I, IGN, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_UNKN, EV, W, UNK, Y_, EXP, N_NONE, 0},
    {EXP, E_UNKN, EV, T, UNK, Y_, EXP, N_NONE, 0},
    {EXP, E_UNKN, EV, I, UNK, Y_, EXP, N_NONE, 0},

    /* ---- commands (issuer API, Token API cancel, card cascade) ---- */
    {PEND, E_SUSP, CMD, W, REF, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_SUSP, CMD, T, REF, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_SUSP, CMD, I, REF, Y_PIDV, PEND, N_NONE, 0},
    {PEND, E_RESM, CMD, W, REF, Y_NPERM, PEND, N_NONE, 0},
    {PEND, E_RESM, CMD, T, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED | FX_TSP},
    {PEND, E_RESM, CMD, I, APPL, Y_, ACT, N_DIG_OK, F_ACTIVATED | FX_TSP},
    {PEND, E_DEL, CMD, W, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER | FX_TSP},
    {PEND, E_DEL, CMD, T, APPL, Y_, DEL, N_DIG_USER, F_CANCEL_USER | FX_TSP},
    {PEND, E_DEL, CMD, I, APPL, Y_, DEL, N_DIG_ISSUER, F_CANCEL_ISSUER | FX_TSP},
    {ACT, E_SUSP, CMD, W, APPL, Y_, SUSP, N_SUSP, FX_TSP},
    {ACT, E_SUSP, CMD, T, APPL, Y_, SUSP, N_SUSP, FX_TSP},
    {ACT, E_SUSP, CMD, I, APPL, Y_, SUSP, N_SUSP, FX_TSP},
    {ACT, E_RESM, CMD, W, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_RESM, CMD, T, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_RESM, CMD, I, NOOP, Y_, ACT, N_NONE, 0},
    {ACT, E_DEL, CMD, W, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {ACT, E_DEL, CMD, T, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {ACT, E_DEL, CMD, I, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {SUSP, E_SUSP, CMD, W, NOOP, Y_, SUSP, N_NONE, 0},
    {SUSP, E_SUSP, CMD, T, APPL, Y_, SUSP, N_SUSP, FX_TSP},
    {SUSP, E_SUSP, CMD, I, APPL, Y_, SUSP, N_SUSP, FX_TSP},
    {SUSP, E_RESM, CMD, W, APPL, Y_, ACT, N_RESM, FX_TSP},
    {SUSP, E_RESM, CMD, T, REF, Y_OTHR, SUSP, N_NONE, 0},
    {SUSP, E_RESM, CMD, I, REF, Y_OTHR, SUSP, N_NONE, 0},
    {SUSP, E_DEL, CMD, W, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {SUSP, E_DEL, CMD, T, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {SUSP, E_DEL, CMD, I, APPL, Y_, DEL, N_DEL, F_DELETED | FX_TSP},
    {DEL, E_SUSP, CMD, W, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUSP, CMD, T, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_SUSP, CMD, I, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, CMD, W, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, CMD, T, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_RESM, CMD, I, REF, Y_DEL, DEL, N_NONE, 0},
    {DEL, E_DEL, CMD, W, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DEL, CMD, T, NOOP, Y_, DEL, N_NONE, 0},
    {DEL, E_DEL, CMD, I, NOOP, Y_, DEL, N_NONE, 0},
    {DECL, E_SUSP, CMD, W, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUSP, CMD, T, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_SUSP, CMD, I, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, CMD, W, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, CMD, T, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_RESM, CMD, I, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, CMD, W, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, CMD, T, REF, Y_DECL, DECL, N_NONE, 0},
    {DECL, E_DEL, CMD, I, REF, Y_DECL, DECL, N_NONE, 0},
    {EXP, E_SUSP, CMD, W, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUSP, CMD, T, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_SUSP, CMD, I, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, CMD, W, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, CMD, T, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_RESM, CMD, I, REF, Y_EXP, EXP, N_NONE, 0},
    {EXP, E_DEL, CMD, W, APPL, Y_, DEL, N_DEL, FX_REEN | FX_TSP},
    {EXP, E_DEL, CMD, T, APPL, Y_, DEL, N_DEL, FX_REEN | FX_TSP},
    {EXP, E_DEL, CMD, I, APPL, Y_, DEL, N_DEL, FX_REEN | FX_TSP},
};
#define N_ROWS (sizeof ROWS / sizeof ROWS[0])

static const td_source ALL_SOURCES[] = {W, T, I};

static void expect_notice(const struct row *w, const td_card_notice *n, const char *where)
{
    td_card_op op = TD_OP_NONE;
    td_op_status st = TD_OPS_SUCCESSFUL;
    td_digitize_reason why = TD_DF_NONE;
    switch (w->notice) {
    case N_NONE: break;
    case N_DIG_OK: op = TD_OP_DIGITIZE; break;
    case N_DIG_USER: op = TD_OP_DIGITIZE, st = TD_OPS_FAILED, why = TD_DF_CANCELED_BY_USER; break;
    case N_DIG_ISSUER: op = TD_OP_DIGITIZE, st = TD_OPS_FAILED, why = TD_DF_CANCELED_BY_ISSUER; break;
    case N_DIG_EXPIRED: op = TD_OP_DIGITIZE, st = TD_OPS_FAILED, why = TD_DF_STEP_UP_EXPIRED; break;
    case N_SUSP: op = TD_OP_SUSPEND; break;
    case N_RESM: op = TD_OP_RESUME; break;
    case N_DEL: op = TD_OP_DELETE; break;
    case N_DAPP: op = TD_OP_DELETE_FROM_APP; break;
    case N_EXPR: op = TD_OP_EXPIRE; break;
    }
    if (n->op != op) fail_msg("%s: notice op %s, want %s", where, td_card_op_name(n->op), td_card_op_name(op));
    if (op == TD_OP_NONE) return;
    if (n->status != st || n->reason != why || n->source != w->src)
        fail_msg("%s: notice %s %s %s source %s", where, td_card_op_name(n->op), td_op_status_name(n->status),
                 td_digitize_reason_name(n->reason), td_source_name(n->source));
}

/* What every outcome implies for the record's bookkeeping. */
static void expect_bookkeeping(const struct row *w, const td_dcard *v, const td_dcard_result *r, const char *where)
{
    bool ev = w->o == EV;
    bool recorded = w->out == APPL || w->out == IGN || w->out == UNK || (w->out == NOOP && ev);
    bool accepts_time = ev && (w->out == APPL || w->out == NOOP);
    if (r->record_event != recorded) fail_msg("%s: record_event %d", where, r->record_event);
    if (r->rec.seq != v->seq + (recorded ? 1 : 0)) fail_msg("%s: seq %lld", where, (long long)r->rec.seq);
    if (r->rec.last_event_ms != (accepts_time ? T1 : T0)) fail_msg("%s: last_event_ms moved wrongly", where);
    if (w->out != APPL) {
        /* Nothing but the bookkeeping changes. */
        td_dcard want = *v;
        want.seq = r->rec.seq;
        want.last_event_ms = r->rec.last_event_ms;
        if (!same_rec(&want, &r->rec)) fail_msg("%s: record changed", where);
    }
    if (w->out == REF && !same_rec(v, &r->rec)) fail_msg("%s: a refusal changed the record", where);
    /* The set of suspenders is non-empty exactly while SUSPENDED. */
    if ((r->rec.state == SUSP) != (r->rec.suspended_by != 0)) fail_msg("%s: suspenders/state disagree", where);
    /* Step-up is open only while PENDING_IDV. */
    if (r->rec.stepup_open && r->rec.state != PEND) fail_msg("%s: step-up left open", where);
}

static void check_row(const struct row *w)
{
    char where[128];
    snprintf(where, sizeof where, "%s %s %s %s", td_dcard_state_name(w->st), td_dcard_ev_name(w->ev),
             w->o == EV ? "event" : "command", td_source_name(w->src));
    td_dcard v = view_of(w->st);
    td_dcard_input in = input(w->ev, w->src, w->o, T1);
    td_dcard_result r = td_dcard_apply(&v, &in);
    if (r.outcome != w->out || r.why != w->why)
        fail_msg("%s: %s/%s, want %s/%s", where, td_dcard_outcome_name(r.outcome), td_dcard_why_name(r.why),
                 td_dcard_outcome_name(w->out), td_dcard_why_name(w->why));
    if (r.rec.state != w->after)
        fail_msg("%s: state %s, want %s", where, td_dcard_state_name(r.rec.state), td_dcard_state_name(w->after));
    if (r.effects != w->fx) fail_msg("%s: effects %#x, want %#x", where, r.effects, w->fx);
    expect_notice(w, &r.notice, where);
    expect_bookkeeping(w, &v, &r, where);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ROWS; i++)
        check_row(&ROWS[i]);
}

static bool is_command_type(td_dcard_ev e)
{
    return e == E_SUSP || e == E_RESM || e == E_DEL;
}

/* The table names every event combination once, and every command of a
 * command type once: nothing is left to chance. */
static void test_table_is_exhaustive(void **state)
{
    (void)state;
    size_t want = 0;
    for (int st = 0; st < TD_DC__COUNT; st++)
        for (int ev = 0; ev < TD_EV__COUNT; ev++)
            for (int o = 0; o < 2; o++)
                for (size_t s = 0; s < 3; s++) {
                    if (o == CMD && !is_command_type((td_dcard_ev)ev)) continue;
                    int hits = 0;
                    for (size_t i = 0; i < N_ROWS; i++)
                        if ((int)ROWS[i].st == st && (int)ROWS[i].ev == ev && (int)ROWS[i].o == o &&
                            ROWS[i].src == ALL_SOURCES[s])
                            hits++;
                    if (hits != 1)
                        fail_msg("%s %s origin %d %s: %d rows", td_dcard_state_name((td_dcard_state)st),
                                 td_dcard_ev_name((td_dcard_ev)ev), o, td_source_name(ALL_SOURCES[s]), hits);
                    want++;
                }
    assert_int_equal(N_ROWS, want);
    assert_int_equal(N_ROWS, 6 * 10 * 3 + 6 * 3 * 3);
}

/* The other commands: only SUSPEND, RESUME and DELETE can be asked for. */
static void test_non_command_types_refused(void **state)
{
    (void)state;
    for (int st = 0; st < TD_DC__COUNT; st++)
        for (int ev = 0; ev < TD_EV__COUNT; ev++)
            for (size_t s = 0; s < 3; s++) {
                if (is_command_type((td_dcard_ev)ev)) continue;
                td_dcard v = view_of((td_dcard_state)st);
                td_dcard_input in = input((td_dcard_ev)ev, ALL_SOURCES[s], CMD, T1);
                td_dcard_result r = td_dcard_apply(&v, &in);
                assert_int_equal(r.outcome, REF);
                assert_int_equal(r.why, Y_NAC);
                assert_false(r.record_event);
                assert_int_equal(r.effects, 0);
                assert_int_equal(r.notice.op, TD_OP_NONE);
                assert_true(same_rec(&r.rec, &v));
            }
}

/* ---- multi-party suspension ---- */

static td_dcard_result step(td_dcard *v, td_dcard_ev ev, td_source src, td_origin o, int64_t at)
{
    td_dcard_input in = input(ev, src, o, at);
    td_dcard_result r = td_dcard_apply(v, &in);
    *v = r.rec;
    return r;
}

static td_dcard_result step_party(td_dcard *v, td_dcard_ev ev, td_source src, td_party p, int64_t at)
{
    td_dcard_input in = input(ev, src, EV, at);
    in.party = p;
    td_dcard_result r = td_dcard_apply(v, &in);
    *v = r.rec;
    return r;
}

static void test_issuer_suspension_precedence(void **state)
{
    (void)state;
    td_dcard v = view_of(ACT);
    td_dcard_result r = step(&v, E_SUSP, I, CMD, T1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.suspended_by, TD_PARTY_ISSUER);
    r = step(&v, E_SUSP, W, EV, T1 + 1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, SUSP);
    assert_int_equal(v.suspended_by, TD_PARTY_ISSUER | TD_PARTY_WALLET);
    assert_int_equal(r.notice.op, TD_OP_SUSPEND);
    /* The wallet lifts its own suspension; the issuer's stands. */
    r = step(&v, E_RESM, W, EV, T1 + 2);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, SUSP);
    assert_int_equal(v.suspended_by, TD_PARTY_ISSUER);
    assert_int_equal(r.notice.op, TD_OP_RESUME);
    assert_int_equal(r.notice.source, W);
    /* Nobody but the issuer lifts it, whatever they send. */
    r = step(&v, E_RESM, W, EV, T1 + 3);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.why, Y_OTHR);
    r = step(&v, E_RESM, T, EV, T1 + 4);
    assert_int_equal(r.outcome, IGN);
    r = step_party(&v, E_RESM, T, TD_PARTY_ISSUER, T1 + 5);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.why, Y_NPERM);
    r = step_party(&v, E_RESM, W, TD_PARTY_ISSUER, T1 + 6);
    assert_int_equal(r.why, Y_NPERM);
    assert_int_equal(v.state, SUSP);
    assert_int_equal(v.suspended_by, TD_PARTY_ISSUER);
    /* The issuer does. */
    r = step(&v, E_RESM, I, CMD, T1 + 7);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, ACT);
    assert_int_equal(v.suspended_by, 0);
    assert_true(r.effects & FX_TSP);
}

static void test_all_parties_must_resume(void **state)
{
    (void)state;
    td_dcard v = view_of(ACT);
    step(&v, E_SUSP, W, EV, T1);
    step(&v, E_SUSP, T, EV, T1 + 1);
    step(&v, E_SUSP, I, EV, T1 + 2);
    assert_int_equal(v.suspended_by, TD_PARTY_WALLET | TD_PARTY_TSP | TD_PARTY_ISSUER);
    /* In any order, the card comes back only with the last one. */
    assert_int_equal(step(&v, E_RESM, I, CMD, T1 + 3).rec.state, SUSP);
    assert_int_equal(step(&v, E_RESM, T, EV, T1 + 4).rec.state, SUSP);
    assert_int_equal(v.suspended_by, TD_PARTY_WALLET);
    td_dcard_result r = step(&v, E_RESM, W, EV, T1 + 5);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, ACT);
    assert_int_equal(v.suspended_by, 0);
}

static void test_issuer_cannot_lift_others(void **state)
{
    (void)state;
    /* The issuer's resume of a card only the wallet suspended is refused:
     * answering success would tell the issuer the card is usable. */
    td_dcard v = view_of(SUSP);
    td_dcard before = v;
    td_dcard_result r = step(&v, E_RESM, I, CMD, T1);
    assert_int_equal(r.outcome, REF);
    assert_int_equal(r.why, Y_OTHR);
    assert_true(same_rec(&v, &before));
    assert_string_equal(td_dcard_why_name(r.why), "OTHER_PARTY");
}

static void test_mdes_parties(void **state)
{
    (void)state;
    td_dcard v = view_of(ACT);
    td_dcard_result r = step_party(&v, E_SUSP, T, td_party_from_mdes("MOBILE_PIN_LOCKED"), T1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.suspended_by, TD_PARTY_MOBILE_PIN_LOCKED);
    step_party(&v, E_SUSP, T, td_party_from_mdes("CARDHOLDER"), T1 + 1);
    assert_int_equal(v.suspended_by, TD_PARTY_MOBILE_PIN_LOCKED | TD_PARTY_CARDHOLDER);
    /* A TSP resume naming nobody is the TSP's own, which it does not hold. */
    assert_int_equal(step(&v, E_RESM, T, EV, T1 + 2).why, Y_OTHR);
    assert_int_equal(step_party(&v, E_RESM, T, TD_PARTY_MOBILE_PIN_LOCKED, T1 + 3).rec.state, SUSP);
    r = step_party(&v, E_RESM, W, TD_PARTY_CARDHOLDER, T1 + 4);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, ACT);
    /* A repeat suspend by a party already holding one is a no-op. */
    step_party(&v, E_SUSP, T, TD_PARTY_ISSUER, T1 + 5);
    r = step(&v, E_SUSP, I, CMD, T1 + 6);
    assert_int_equal(r.outcome, NOOP);
    assert_int_equal(v.suspended_by, TD_PARTY_ISSUER);
}

static void test_suspended_without_suspenders(void **state)
{
    (void)state;
    /* A SUSPENDED record that names nobody (kept before suspenders were):
     * any party's resume brings it back. */
    for (size_t s = 0; s < 3; s++) {
        td_dcard v = view_of(SUSP);
        v.suspended_by = 0;
        td_dcard_result r = step(&v, E_RESM, ALL_SOURCES[s], EV, T1);
        assert_int_equal(r.outcome, APPL);
        assert_int_equal(v.state, ACT);
    }
}

/* ---- late, stale and repeated events ---- */

static void test_late_events_never_go_back(void **state)
{
    (void)state;
    static const td_dcard_state finals[] = {DEL, DECL, EXP};
    static const int64_t times[] = {0, 1, T0 - 1, T0, T1, T1 * 2};
    for (size_t f = 0; f < 3; f++)
        for (int ev = 0; ev < TD_EV__COUNT; ev++)
            for (size_t s = 0; s < 3; s++)
                for (int o = 0; o < 2; o++)
                    for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
                        td_dcard v = view_of(finals[f]);
                        td_dcard_input in = input((td_dcard_ev)ev, ALL_SOURCES[s], (td_origin)o, times[t]);
                        td_dcard_result r = td_dcard_apply(&v, &in);
                        /* An expired card can still be deleted; nothing else moves. */
                        bool may = finals[f] == EXP && (ev == E_DEL || ev == E_DAPP) && r.outcome == APPL;
                        assert_int_equal(r.rec.state, may ? DEL : finals[f]);
                        assert_int_equal(r.rec.suspended_by, 0);
                    }
}

static void test_stale_toggles_ignored(void **state)
{
    (void)state;
    td_dcard v = view_of(ACT);
    /* Older than the newest event accepted: ignored, recorded. */
    td_dcard_result r = step(&v, E_SUSP, W, EV, T0 - 1);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.why, TD_DCW_STALE);
    assert_true(r.record_event);
    assert_int_equal(v.state, ACT);
    assert_int_equal(v.last_event_ms, T0);
    /* The same time is not older: applied. */
    r = step(&v, E_SUSP, W, EV, T0);
    assert_int_equal(r.outcome, APPL);
    /* A stale resume does not lift it either. */
    r = step(&v, E_RESM, W, EV, T0 - 5);
    assert_int_equal(r.why, TD_DCW_STALE);
    assert_int_equal(v.state, SUSP);
    /* A stale suspend by another party does not join. */
    r = step(&v, E_SUSP, T, EV, T0 - 5);
    assert_int_equal(r.why, TD_DCW_STALE);
    assert_int_equal(v.suspended_by, TD_PARTY_WALLET);
    /* No time given: no staleness to judge, and the watermark stays. */
    r = step(&v, E_RESM, W, EV, 0);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.last_event_ms, T0);
}

static void test_reordered_suspend_resume(void **state)
{
    (void)state;
    /* SUSPEND@t1 then RESUME@t2 delivered the other way round: the resume
     * finds the card ACTIVE (no-op, but its time is accepted), so the late
     * suspend is stale and the card ends ACTIVE, as it is at the TSP. */
    td_dcard v = view_of(ACT);
    td_dcard_result r = step(&v, E_RESM, W, EV, T1 + 2000);
    assert_int_equal(r.outcome, NOOP);
    assert_int_equal(v.last_event_ms, T1 + 2000);
    r = step(&v, E_SUSP, W, EV, T1 + 1000);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.why, TD_DCW_STALE);
    assert_int_equal(v.state, ACT);
}

static void test_one_way_changes_apply_late(void **state)
{
    (void)state;
    /* Deletion and activation cannot be undone, so an old one still applies. */
    td_dcard v = view_of(SUSP);
    assert_int_equal(step(&v, E_DEL, T, EV, 1).outcome, APPL);
    assert_int_equal(v.state, DEL);
    v = view_of(PEND);
    assert_int_equal(step(&v, E_IDVOK, T, EV, 1).outcome, APPL);
    assert_int_equal(v.state, ACT);
    assert_int_equal(v.last_event_ms, T0);
}

static void test_commands_ignore_event_clock(void **state)
{
    (void)state;
    /* Commands carry tokend's clock: never stale, never move the watermark. */
    td_dcard v = view_of(ACT);
    v.last_event_ms = T1 * 2;
    td_dcard_result r = step(&v, E_SUSP, I, CMD, T1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.last_event_ms, T1 * 2);
    r = step(&v, E_RESM, I, CMD, T1 * 3);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.last_event_ms, T1 * 2);
}

static void test_repeats_are_idempotent(void **state)
{
    (void)state;
    static const td_dcard_ev evs[] = {E_ACTV, E_IDVOK, E_SUSP, E_RESM, E_DEL, E_DAPP, E_EXPR};
    static const td_dcard_state starts[] = {PEND, ACT, SUSP};
    for (size_t a = 0; a < 3; a++)
        for (size_t e = 0; e < sizeof evs / sizeof evs[0]; e++)
            for (size_t s = 0; s < 3; s++)
                for (int o = 0; o < 2; o++) {
                    if (o == CMD && !is_command_type(evs[e])) continue;
                    td_dcard v = view_of(starts[a]);
                    td_dcard_result first = step(&v, evs[e], ALL_SOURCES[s], (td_origin)o, T1);
                    if (first.outcome != APPL) continue;
                    td_dcard after = v;
                    td_dcard_result again = step(&v, evs[e], ALL_SOURCES[s], (td_origin)o, T1);
                    /* The second time: success, no second effect. */
                    assert_int_equal(again.outcome, NOOP);
                    assert_int_equal(again.effects, 0);
                    assert_int_equal(again.notice.op, TD_OP_NONE);
                    assert_int_equal(v.state, after.state);
                    assert_int_equal(v.suspended_by, after.suspended_by);
                    assert_int_equal(again.record_event, o == EV);
                }
}

static void test_unknown_types(void **state)
{
    (void)state;
    assert_int_equal(td_dcard_ev_parse("DEVICE_BOUND"), E_UNKN);
    assert_int_equal(td_dcard_ev_parse(""), E_UNKN);
    assert_int_equal(td_dcard_ev_parse(NULL), E_UNKN);
    assert_int_equal(td_dcard_ev_parse("RENEW"), E_UNKN);
    for (int st = 0; st < TD_DC__COUNT; st++) {
        td_dcard v = view_of((td_dcard_state)st);
        td_dcard_input in = input(td_dcard_ev_parse("TOKEN_UPDATED"), T, EV, T1);
        td_dcard_result r = td_dcard_apply(&v, &in);
        assert_int_equal(r.outcome, UNK);
        assert_true(r.record_event);
        assert_int_equal(r.rec.seq, SEQ + 1);
        assert_int_equal(r.rec.last_event_ms, T0);
        assert_int_equal(r.rec.state, st);
        assert_int_equal(r.effects, 0);
        assert_int_equal(r.notice.op, TD_OP_NONE);
    }
}

/* ---- step-up endings ---- */

static void test_idv_failures_then_expiry(void **state)
{
    (void)state;
    td_dcard v = view_of(PEND);
    td_dcard_result r = step(&v, E_IDVKO, T, EV, T1);
    assert_int_equal(v.idv_failures, 1);
    /* One failure is enough for the session's end to say so. */
    td_dcard once = v;
    assert_int_equal(step(&once, E_SUEX, T, EV, T1 + 1).notice.reason, TD_DF_IDV_FAILED);
    r = step(&v, E_IDVKO, T, EV, T1 + 1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(r.notice.op, TD_OP_NONE);
    assert_int_equal(r.effects, 0);
    assert_int_equal(v.state, PEND);
    assert_true(v.stepup_open);
    assert_int_equal(v.idv_failures, 2);
    /* The session runs out after failed attempts: ID&V failed. */
    td_dcard w = v;
    r = step(&w, E_SUEX, T, EV, T1 + 2);
    assert_int_equal(r.notice.reason, TD_DF_IDV_FAILED);
    assert_int_equal(w.state, DEL);
    assert_false(w.stepup_open);
    w = v;
    r = step(&w, E_EXPR, T, EV, T1 + 2);
    assert_int_equal(r.notice.reason, TD_DF_IDV_FAILED);
    assert_int_equal(w.state, EXP);
    /* The end user giving up after a failure is still a cancellation. */
    w = v;
    r = step(&w, E_DEL, W, EV, T1 + 2);
    assert_int_equal(r.notice.reason, TD_DF_CANCELED_BY_USER);
    /* A success after failures activates. */
    w = v;
    r = step(&w, E_IDVOK, T, EV, T1 + 2);
    assert_int_equal(w.state, ACT);
    assert_int_equal(r.notice.op, TD_OP_DIGITIZE);
    assert_int_equal(r.notice.status, TD_OPS_SUCCESSFUL);
}

static void test_canceled_tokenization(void **state)
{
    (void)state;
    td_dcard v = view_of(PEND);
    td_dcard_result r = step(&v, E_DEL, W, EV, T1);
    assert_int_equal(r.outcome, APPL);
    assert_int_equal(v.state, DEL);
    assert_int_equal(r.notice.op, TD_OP_DIGITIZE);
    assert_int_equal(r.notice.status, TD_OPS_FAILED);
    assert_int_equal(r.notice.reason, TD_DF_CANCELED_BY_USER);
    assert_int_equal(r.notice.source, W);
    assert_true(r.effects & TD_FX_STOP_STEP_UP);
    assert_true(r.effects & TD_FX_ALLOW_REENROLMENT);
    assert_true(r.effects & TD_FX_MSG_CANCELLATION);
    assert_false(v.stepup_open);
    /* The TSP's duplicate of the same deletion changes nothing more. */
    r = step(&v, E_DEL, T, EV, T1 + 1);
    assert_int_equal(r.outcome, NOOP);
    assert_int_equal(r.effects, 0);
    /* Nor does the step-up timer firing afterwards. */
    r = step(&v, E_SUEX, T, EV, T1 + 2);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.effects, 0);
    assert_int_equal(v.state, DEL);
}

static void test_stepup_timer_after_activation(void **state)
{
    (void)state;
    td_dcard v = view_of(PEND);
    step(&v, E_IDVOK, T, EV, T1);
    td_dcard_result r = step(&v, E_SUEX, T, EV, T1 + 1);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(r.why, Y_AACT);
    assert_int_equal(v.state, ACT);
    assert_int_equal(r.effects, 0);
}

static void test_stop_step_up_when_left_open(void **state)
{
    (void)state;
    /* A record whose step-up was never closed gets the stop on its next end. */
    td_dcard v = view_of(ACT);
    v.stepup_open = true;
    td_dcard_result r = step(&v, E_DEL, T, EV, T1);
    assert_true(r.effects & TD_FX_STOP_STEP_UP);
    assert_false(v.stepup_open);
    v = view_of(ACT);
    r = step(&v, E_DEL, T, EV, T1);
    assert_false(r.effects & TD_FX_STOP_STEP_UP);
    /* Leaving PENDING_IDV always stops step-up, even if the flag was lost. */
    v = view_of(PEND);
    v.stepup_open = false;
    r = step(&v, E_DEL, W, EV, T1);
    assert_true(r.effects & TD_FX_STOP_STEP_UP);
    v = view_of(PEND);
    v.stepup_open = false;
    r = step(&v, E_IDVOK, T, EV, T1);
    assert_true(r.effects & TD_FX_STOP_STEP_UP);
}

static void test_delete_from_app_revivable(void **state)
{
    (void)state;
    td_dcard v = view_of(ACT);
    td_dcard_result r = step(&v, E_DAPP, W, EV, T1);
    assert_int_equal(r.notice.op, TD_OP_DELETE_FROM_APP);
    assert_int_equal(v.revivable_until_ms, T1 + TD_REVIVABLE_MS);
    assert_int_equal(TD_REVIVABLE_MS, 95LL * 86400000LL);
    /* No event time: counted from when tokend received it. */
    v = view_of(SUSP);
    td_dcard_input in = input(E_DAPP, W, EV, 0);
    in.now_ms = T1 + 7;
    r = td_dcard_apply(&v, &in);
    assert_int_equal(r.rec.revivable_until_ms, T1 + 7 + TD_REVIVABLE_MS);
    /* A plain delete is not revivable; a pending card deleted from the app is. */
    v = view_of(ACT);
    assert_int_equal(step(&v, E_DEL, W, EV, T1).rec.revivable_until_ms, 0);
    v = view_of(PEND);
    r = step(&v, E_DAPP, W, EV, T1);
    assert_int_equal(r.notice.reason, TD_DF_CANCELED_BY_USER);
    assert_int_equal(v.revivable_until_ms, T1 + TD_REVIVABLE_MS);
    /* A revival is not a transition: a later activation is ignored. */
    r = step(&v, E_ACTV, T, EV, T1 + 1);
    assert_int_equal(r.outcome, IGN);
    assert_int_equal(v.state, DEL);
}

static void test_initial(void **state)
{
    (void)state;
    td_dcard_result g = td_dcard_initial(TD_VERDICT_GREEN);
    assert_int_equal(g.outcome, APPL);
    assert_true(g.record_event);
    assert_int_equal(g.rec.seq, 1);
    assert_int_equal(g.rec.state, ACT);
    assert_false(g.rec.stepup_open);
    assert_int_equal(g.notice.op, TD_OP_DIGITIZE);
    assert_int_equal(g.notice.status, TD_OPS_SUCCESSFUL);
    assert_int_equal(g.notice.source, T);
    assert_int_equal(g.effects, TD_FX_MSG_ACTIVATION);

    td_dcard_result y = td_dcard_initial(TD_VERDICT_YELLOW);
    assert_int_equal(y.rec.state, PEND);
    assert_true(y.rec.stepup_open);
    assert_int_equal(y.notice.op, TD_OP_DIGITIZE);
    assert_int_equal(y.notice.status, TD_OPS_PENDING);
    assert_int_equal(y.effects, TD_FX_START_STEP_UP);

    td_dcard_result r = td_dcard_initial(TD_VERDICT_RED);
    assert_int_equal(r.rec.state, DECL);
    assert_int_equal(r.notice.status, TD_OPS_FAILED);
    assert_int_equal(r.notice.reason, TD_DF_DECLINED);
    assert_int_equal(r.effects, 0);
    for (int i = 0; i < 3; i++) {
        td_dcard_result x = td_dcard_initial((td_verdict)i);
        assert_int_equal(x.rec.suspended_by, 0);
        assert_int_equal(x.rec.last_event_ms, 0);
        assert_int_equal(x.rec.idv_failures, 0);
    }
}

/* ---- a randomised run: the invariants hold on any sequence ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static int rank(td_dcard_state s)
{
    switch (s) {
    case PEND: return 0;
    case ACT:
    case SUSP: return 1;
    default: return 2;
    }
}

static void check_invariants(const td_dcard *v, const td_dcard_input *in, const td_dcard_result *r)
{
    /* Never backwards: PENDING_IDV < ACTIVE/SUSPENDED < the final states;
     * a final state moves only EXPIRED → DELETED. */
    assert_true(rank(r->rec.state) >= rank(v->state));
    if (td_dcard_state_is_final(v->state) && r->rec.state != v->state)
        assert_true(v->state == EXP && r->rec.state == DEL);
    if (v->state == DECL || v->state == DEL) assert_int_equal(r->rec.state, v->state);
    /* Suspenders exist exactly while SUSPENDED. */
    assert_int_equal(r->rec.state == SUSP, r->rec.suspended_by != 0);
    /* Only the issuer lifts the issuer's suspension (or the card ends). */
    if ((v->suspended_by & TD_PARTY_ISSUER) && !(r->rec.suspended_by & TD_PARTY_ISSUER))
        assert_true(in->source == I || td_dcard_state_is_final(r->rec.state));
    /* Refused: nothing; otherwise exactly one more sequence number when recorded. */
    if (r->outcome == REF) assert_true(same_rec(&r->rec, v));
    assert_int_equal(r->rec.seq, v->seq + (r->record_event ? 1 : 0));
    assert_true(r->rec.last_event_ms >= v->last_event_ms);
    /* Effects only with a change; notices only with a change. */
    if (r->outcome != APPL) {
        assert_int_equal(r->effects, 0);
        assert_int_equal(r->notice.op, TD_OP_NONE);
        assert_int_equal(r->rec.state, v->state);
    }
    if (r->rec.stepup_open) assert_int_equal(r->rec.state, PEND);
}

static void test_random_sequences(void **state)
{
    (void)state;
    for (int run = 0; run < 2000; run++) {
        td_dcard v = td_dcard_initial((td_verdict)rnd(3)).rec;
        int64_t clock = T0;
        for (int i = 0; i < 40; i++) {
            td_dcard_input in = input((td_dcard_ev)rnd(TD_EV__COUNT), ALL_SOURCES[rnd(3)], (td_origin)rnd(2), 0);
            /* Mostly in order, sometimes late, sometimes without a time. */
            clock += rnd(5000);
            uint32_t k = rnd(10);
            in.event_ms = k == 0 ? 0 : k < 3 ? clock - (int64_t)rnd(20000) : clock;
            in.now_ms = clock;
            if (rnd(4) == 0) in.party = (td_party)(1u << rnd(5));
            td_dcard_result r = td_dcard_apply(&v, &in);
            check_invariants(&v, &in, &r);
            v = r.rec;
        }
    }
}

/* ---- the physical card ---- */

static void test_card_commands(void **state)
{
    (void)state;
    static const struct {
        td_card_state st;
        td_card_cmd c;
        td_dcard_outcome out;
        td_card_state after;
        td_card_op op;
    } rows[] = {
        {TD_CS_ACTIVE, TD_CARD_SUSPEND, APPL, TD_CS_SUSPENDED, TD_OP_SUSPEND},
        {TD_CS_ACTIVE, TD_CARD_RESUME, NOOP, TD_CS_ACTIVE, TD_OP_NONE},
        {TD_CS_ACTIVE, TD_CARD_DELETE, APPL, TD_CS_DELETED, TD_OP_DELETE},
        {TD_CS_SUSPENDED, TD_CARD_SUSPEND, NOOP, TD_CS_SUSPENDED, TD_OP_NONE},
        {TD_CS_SUSPENDED, TD_CARD_RESUME, APPL, TD_CS_ACTIVE, TD_OP_RESUME},
        {TD_CS_SUSPENDED, TD_CARD_DELETE, APPL, TD_CS_DELETED, TD_OP_DELETE},
        {TD_CS_DELETED, TD_CARD_SUSPEND, REF, TD_CS_DELETED, TD_OP_NONE},
        {TD_CS_DELETED, TD_CARD_RESUME, REF, TD_CS_DELETED, TD_OP_NONE},
        {TD_CS_DELETED, TD_CARD_DELETE, NOOP, TD_CS_DELETED, TD_OP_NONE},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        td_card_result r = td_card_apply(rows[i].st, rows[i].c);
        assert_int_equal(r.outcome, rows[i].out);
        assert_int_equal(r.state, rows[i].after);
        assert_int_equal(r.notice.op, rows[i].op);
        assert_int_equal(r.why, rows[i].out == REF ? Y_DEL : Y_);
        if (rows[i].op != TD_OP_NONE) {
            assert_int_equal(r.notice.status, TD_OPS_SUCCESSFUL);
            assert_int_equal(r.notice.source, I);
        }
    }
}

static void test_card_cascade(void **state)
{
    (void)state;
    for (int c = 0; c < TD_CARD_CMD__COUNT; c++)
        for (int st = 0; st < TD_DC__COUNT; st++) {
            td_dcard_input in;
            memset(&in, 0x5a, sizeof in);
            bool yes = td_card_cascade((td_card_cmd)c, (td_dcard_state)st, T1, &in);
            bool want = c == TD_CARD_DELETE && st != DEL && st != DECL;
            assert_int_equal(yes, want);
            if (!yes) continue;
            assert_int_equal(in.type, E_DEL);
            assert_int_equal(in.source, I);
            assert_int_equal(in.origin, CMD);
            assert_int_equal(in.party, TD_PARTY_NONE);
            assert_int_equal(in.event_ms, T1);
            assert_int_equal(in.now_ms, T1);
            /* The cascaded command always lands: each digital card is deleted. */
            td_dcard v = view_of((td_dcard_state)st);
            td_dcard_result r = td_dcard_apply(&v, &in);
            assert_int_equal(r.outcome, APPL);
            assert_int_equal(r.rec.state, DEL);
            assert_true(r.effects & TD_FX_TSP_CALL);
        }
}

/* ---- names ---- */

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < TD_DC__COUNT; i++) {
        td_dcard_state s;
        assert_int_equal(td_dcard_state_parse(td_dcard_state_name((td_dcard_state)i), &s), 0);
        assert_int_equal(s, i);
    }
    td_dcard_state ds;
    assert_int_equal(td_dcard_state_parse("active", &ds), -1);
    assert_int_equal(td_dcard_state_parse(NULL, &ds), -1);
    assert_string_equal(td_dcard_state_name(PEND), "PENDING_IDV");
    assert_string_equal(td_dcard_state_name((td_dcard_state)99), "?");
    for (int i = 0; i < TD_SRC__COUNT; i++) {
        td_source s;
        assert_int_equal(td_source_parse(td_source_name((td_source)i), &s), 0);
        assert_int_equal(s, i);
    }
    td_source src;
    assert_int_equal(td_source_parse("CCI", &src), -1);
    for (int i = 0; i < TD_EV__COUNT; i++)
        assert_int_equal(td_dcard_ev_parse(td_dcard_ev_name((td_dcard_ev)i)), i);
    assert_int_equal(td_dcard_ev_parse("delete_from_app"), E_DAPP);
    assert_int_equal(td_dcard_ev_parse("IDV_SUCCEEDED"), E_IDVOK);
    assert_int_equal(td_dcard_ev_parse("step_up_expired"), E_SUEX);
    for (int i = 0; i < TD_VERDICT__COUNT; i++) {
        td_verdict v;
        assert_int_equal(td_verdict_parse(td_verdict_name((td_verdict)i), &v), 0);
        assert_int_equal(v, i);
    }
    td_verdict v;
    assert_int_equal(td_verdict_parse("yellow", &v), 0);
    assert_int_equal(v, TD_VERDICT_YELLOW);
    assert_int_equal(td_verdict_parse("AMBER", &v), -1);
    assert_string_equal(td_dcard_outcome_name(IGN), "IGNORED_LATE");
    assert_string_equal(td_dcard_outcome_name(UNK), "STORED_UNKNOWN");
    for (int i = TD_DCW_NOT_A_COMMAND; i <= TD_DCW_STALE; i++) {
        assert_string_not_equal(td_dcard_why_name((td_dcard_why)i), "?");
        assert_true(strlen(td_dcard_why_text((td_dcard_why)i)) > 0);
    }
    assert_string_equal(td_card_op_name(TD_OP_DELETE_FROM_APP), "DELETE_FROM_APP");
    assert_string_equal(td_card_op_name(TD_OP_NONE), "");
    assert_string_equal(td_op_status_name(TD_OPS_SUCCESSFUL), "SUCCESSFUL");
    for (int i = 0; i < TD_FX__COUNT; i++)
        assert_true(strlen(td_fx_name(1u << i)) > 0);
    assert_string_equal(td_fx_name(TD_FX_STOP_STEP_UP), "STOP_STEP_UP");
    assert_string_equal(td_fx_name(3), "");
    for (int i = 0; i < TD_CS__COUNT; i++) {
        td_card_state s;
        assert_int_equal(td_card_state_parse(td_card_state_name((td_card_state)i), &s), 0);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < TD_CARD_CMD__COUNT; i++) {
        td_card_cmd c;
        assert_int_equal(td_card_cmd_parse(td_card_cmd_name((td_card_cmd)i), &c), 0);
        assert_int_equal(c, i);
    }
    assert_true(td_dcard_state_is_final(DEL));
    assert_true(td_dcard_state_is_final(DECL));
    assert_true(td_dcard_state_is_final(EXP));
    assert_false(td_dcard_state_is_final(PEND));
    assert_false(td_dcard_state_is_final(ACT));
    assert_false(td_dcard_state_is_final(SUSP));
}

static void test_digitize_reason_status(void **state)
{
    (void)state;
    /* The user-facing table docs/cards.md gives the notification work. */
    assert_string_equal(td_digitize_reason_name(TD_DF_CANCELED_BY_USER), "CANCELED_BY_USER");
    assert_string_equal(td_digitize_reason_text(TD_DF_CANCELED_BY_USER), "canceled by the end user");
    assert_string_equal(td_digitize_reason_text(TD_DF_CANCELED_BY_ISSUER), "canceled by the issuer");
    assert_string_equal(td_digitize_reason_text(TD_DF_DECLINED), "declined");
    assert_string_equal(td_digitize_reason_text(TD_DF_STEP_UP_EXPIRED), "step-up expired");
    assert_string_equal(td_digitize_reason_text(TD_DF_IDV_FAILED), "ID&V failed");
    assert_string_equal(td_digitize_reason_name(TD_DF_NONE), "");
}

static void test_parties(void **state)
{
    (void)state;
    assert_int_equal(td_party_of_source(W), TD_PARTY_WALLET);
    assert_int_equal(td_party_of_source(T), TD_PARTY_TSP);
    assert_int_equal(td_party_of_source(I), TD_PARTY_ISSUER);
    assert_int_equal(td_party_from_mdes("ISSUER"), TD_PARTY_ISSUER);
    assert_int_equal(td_party_from_mdes("TOKEN_REQUESTOR"), TD_PARTY_WALLET);
    assert_int_equal(td_party_from_mdes("MOBILE_PIN_LOCKED"), TD_PARTY_MOBILE_PIN_LOCKED);
    assert_int_equal(td_party_from_mdes("CARDHOLDER"), TD_PARTY_CARDHOLDER);
    assert_int_equal(td_party_from_mdes("SOMEONE_NEW"), TD_PARTY_NONE);
    assert_int_equal(td_party_from_mdes(NULL), TD_PARTY_NONE);
    td_party p;
    assert_int_equal(td_party_parse("CARDHOLDER", &p), 0);
    assert_int_equal(p, TD_PARTY_CARDHOLDER);
    assert_int_equal(td_party_parse("TOKEN_REQUESTOR", &p), -1);
    assert_string_equal(td_party_name(TD_PARTY_MOBILE_PIN_LOCKED), "MOBILE_PIN_LOCKED");
    assert_string_equal(td_party_name(TD_PARTY_NONE), "");
}

static void test_suspenders_text(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(td_suspenders_format(0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(td_suspenders_format(TD_PARTY_WALLET | TD_PARTY_ISSUER, buf, sizeof buf), 0);
    assert_string_equal(buf, "ISSUER,WALLET");
    assert_int_equal(td_suspenders_format(TD_PARTY_ALL, buf, sizeof buf), 0);
    assert_string_equal(buf, "ISSUER,TSP,WALLET,MOBILE_PIN_LOCKED,CARDHOLDER");
    /* Exactly enough room, and one byte short. */
    assert_int_equal(td_suspenders_format(TD_PARTY_ISSUER | TD_PARTY_TSP, buf, 11), 0);
    assert_string_equal(buf, "ISSUER,TSP");
    assert_int_equal(td_suspenders_format(TD_PARTY_ISSUER | TD_PARTY_TSP, buf, 10), -1);
    assert_string_equal(buf, "");
    assert_int_equal(td_suspenders_format(TD_PARTY_ISSUER, buf, 0), -1);
    /* Every set round-trips. */
    for (unsigned set = 0; set <= TD_PARTY_ALL; set++) {
        td_suspenders back = 0xff;
        assert_int_equal(td_suspenders_format((td_suspenders)set, buf, sizeof buf), 0);
        assert_int_equal(td_suspenders_parse(buf, &back), 0);
        assert_int_equal(back, set);
    }
    td_suspenders s;
    assert_int_equal(td_suspenders_parse("ISSUER,", &s), -1);
    assert_int_equal(td_suspenders_parse(",ISSUER", &s), -1);
    assert_int_equal(td_suspenders_parse("ISSUER,,TSP", &s), -1);
    assert_int_equal(td_suspenders_parse("ISSUERX", &s), -1);
    assert_int_equal(td_suspenders_parse("ISSUE", &s), -1);
    assert_int_equal(td_suspenders_parse(NULL, &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_is_exhaustive),
        cmocka_unit_test(test_non_command_types_refused),
        cmocka_unit_test(test_issuer_suspension_precedence),
        cmocka_unit_test(test_all_parties_must_resume),
        cmocka_unit_test(test_issuer_cannot_lift_others),
        cmocka_unit_test(test_mdes_parties),
        cmocka_unit_test(test_suspended_without_suspenders),
        cmocka_unit_test(test_late_events_never_go_back),
        cmocka_unit_test(test_stale_toggles_ignored),
        cmocka_unit_test(test_reordered_suspend_resume),
        cmocka_unit_test(test_one_way_changes_apply_late),
        cmocka_unit_test(test_commands_ignore_event_clock),
        cmocka_unit_test(test_repeats_are_idempotent),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_idv_failures_then_expiry),
        cmocka_unit_test(test_canceled_tokenization),
        cmocka_unit_test(test_stepup_timer_after_activation),
        cmocka_unit_test(test_stop_step_up_when_left_open),
        cmocka_unit_test(test_delete_from_app_revivable),
        cmocka_unit_test(test_initial),
        cmocka_unit_test(test_random_sequences),
        cmocka_unit_test(test_card_commands),
        cmocka_unit_test(test_card_cascade),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_digitize_reason_status),
        cmocka_unit_test(test_parties),
        cmocka_unit_test(test_suspenders_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
