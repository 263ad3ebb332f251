/* faces.h — every endpoint handler, by face, and the helpers they share to
 * validate input and hand writes to the service. */
#ifndef TD_FACES_H
#define TD_FACES_H

#include "api/http.h"
#include "service/cards.h"
#include "service/service.h"

/* operations (ops.c) */
void td_ops_healthz(td_req *r);
void td_ops_readyz(td_req *r);
void td_ops_metrics(td_req *r);

/* Token API (tokenio_tokens.c, tokenio_requests.c, tokenio_keys.c) */
void tokenio_list_tokens(td_req *r);
void tokenio_get_token(td_req *r);
void tokenio_cancel_token(td_req *r);
void tokenio_not_implemented(td_req *r);
void tokenio_store_request(td_req *r);
/* Validates a POST /token-requests body; sets *kind. 0 if valid. */
int tokenio_check_request(json_t *body, td_kind *kind, td_error *e);
void tokenio_get_request(td_req *r);
void tokenio_get_request_result(td_req *r);
void tokenio_authorize_request(td_req *r);
void tokenio_list_keys(td_req *r);
void tokenio_add_key(td_req *r);
void tokenio_get_key(td_req *r);
void tokenio_delete_key(td_req *r);

/* consent pages (consent.c) */
void consent_page(td_req *r);
void consent_decide(td_req *r);
/* Decodes the consent form (decision=approve|reject, accounts=a,b or accountId=a
 * repeated) into cmd; 0 if valid. Pure: the fuzzer drives it directly. */
int consent_parse_form(const char *body, size_t len, td_consent_decide *cmd, td_error *e);

/* Issuer API (issuer.c; D1-compatible, docs/network.md) */
void issuer_register_card(td_req *r);
void issuer_get_card(td_req *r);
void issuer_list_dcards(td_req *r);
void issuer_card_suspend(td_req *r);
void issuer_card_resume(td_req *r);
void issuer_card_delete(td_req *r);
void issuer_get_dcard(td_req *r);
void issuer_dcard_suspend(td_req *r);
void issuer_dcard_resume(td_req *r);
void issuer_dcard_delete(td_req *r);
void issuer_get_operation(td_req *r);

/* The D1 views (docs/network.md), shared with the classic face and the CARD tokens. */
json_t *issuer_dcard_view(const td_dcard_rec *dc);
json_t *issuer_card_view(const td_card_rec *c, json_t *dcards); /* steals dcards; NULL = [] */
/* The suspenders as an array of party names, in bit order. */
json_t *td_suspenders_json(td_suspenders set);
/* Stored JSON text parsed, or fallback (stolen) when absent or unreadable. */
json_t *td_stored_json(const char *text, json_t *fallback);

/* Network API (network.c) */
void network_tokenize(td_req *r);
void network_send_otp(td_req *r);
void network_event(td_req *r);

/* Classic RPC (classic.c; Thales IGW-compatible) */
void classic_update_card_state(td_req *r);
void classic_get_card_info(td_req *r);
void classic_get_token_info(td_req *r);

/* ---- pure parsers of the card faces' untrusted input ----
 * What the handlers above check before anything else, without a td_req: each
 * takes the body as td_body_json parsed it, never echoes a PAN or OTP in e,
 * and sets e on failure (-1). String outputs given as pointers point into the
 * body. The fuzzer (fuzz/fuzz_request.c) drives them directly. */

/* POST …/cards: the fields of a card registration, absent optional ones NULL. */
typedef struct {
    const char *card_id, *consumer_id, *pan, *expiry, *phone, *email;
    td_card_state state; /* ACTIVE (the default) or SUSPENDED */
} issuer_card_fields;
/* Checks the body into f; 0 if valid. On failure f->pan may still point at
 * the body's PAN, which the caller wipes. */
int issuer_parse_register(json_t *body, issuer_card_fields *f, td_error *e);
/* The optional body {"reason", "reasonCode"} of …/operations:suspend|resume|delete
 * (body NULL: no body) with the card-level or digital-card reason codes; fills
 * reason ("" if none) and code (ISSUER_DECISION if none); 0 if valid. */
int issuer_parse_operation(json_t *body, bool card_level, char reason[65], char code[40], td_error *e);
/* POST /network/v1/tokenizations: fills cmd's request fields (the PAN or the
 * card reference, ...); 0 if valid. Whatever the result, the caller frees
 * cmd->device_json (it may be set on failure), wipes cmd->pan and the body's
 * card.pan (wiped here only once card was reached). */
int network_parse_tokenize(json_t *body, td_tokenize *cmd, td_error *e);
/* POST /network/v1/digitalCards/{id}/otp: {"methodId", "otp"}; 0 if valid. */
int network_parse_otp(json_t *body, const char **method_id, const char **otp, td_error *e);
/* POST /network/v1/events: fills cmd's request fields; 0 if valid. The caller
 * frees cmd->detail_json (malloc'd, NULL without details) whatever the result. */
int network_parse_event(json_t *body, td_ingest_event *cmd, td_error *e);
/* The x-correlation-id (1–64 printable) and x-issuer-id (exactly 10, the
 * caller's issuer) headers: 0, or -1 with e set to 111 (missing), 112 (bad
 * format) or 113 (another issuer) in e->classic. */
int classic_check_headers(const char *correlation_id, const char *issuer_hdr, const char *caller_issuer, td_error *e);
/* The Classic RPC bodies, after the headers: an unknown field or a field
 * outside its pattern is 112, a missing one 111 (e->classic). */
int classic_parse_card_info(json_t *body, const char **card_id, td_error *e);
int classic_parse_token_info(json_t *body, const char **card_id, const char **virtual_card_id, td_error *e);
/* updateCardState: virtual_card_id and reason NULL when absent. */
int classic_parse_update(json_t *body, const char **card_id, const char **virtual_card_id, td_dcard_ev *action,
                         const char **reason, td_error *e);

/* admin API (admin.c) */
void admin_create_member(td_req *r);
void admin_create_member_api_key(td_req *r);
void admin_create_issuer(td_req *r);
void admin_create_issuer_api_key(td_req *r);
void admin_bind_member_api_key(td_req *r);
void admin_bind_issuer_api_key(td_req *r);
void admin_set_fault(td_req *r);
void admin_put_card_policy(td_req *r);
void admin_get_card_policy(td_req *r);
void admin_list_outbox(td_req *r);
void admin_set_tsp(td_req *r);
/* D1 issuer ids: exactly 10 characters of [A-Za-z0-9_-]. */
bool admin_valid_issuer_id(const char *s);
/* API keys' lifecycle and the credential audit log (admin_creds.c). */
void admin_list_member_api_keys(td_req *r);
void admin_list_issuer_api_keys(td_req *r);
void admin_revoke_member_api_key(td_req *r);
void admin_revoke_issuer_api_key(td_req *r);
void admin_list_credential_events(td_req *r);
/* Notification delivery (docs/notifications.md): an issuer's delivery
 * settings, and replaying dead letters (one, or all of an issuer's). */
void admin_put_delivery(td_req *r);
void admin_get_delivery(td_req *r);
void admin_replay_one(td_req *r);
void admin_replay_all(td_req *r);
/* The strict PUT …/delivery body into d (over td_delivery_defaults) and the
 * secret in clear (*secret points into b; NULL when none was given); 0 if
 * valid, else -1 with e naming the field. d->templates_json is malloc'd. */
int admin_parse_delivery(json_t *b, td_delivery_rec *d, const char **secret, td_error *e);
/* The settings as the admin API shows them: the secret only as "secretSet". */
json_t *admin_delivery_view(const td_delivery_rec *d, bool secret_set);

/* ---- shared by faces (face_util.c) ---- */

/* Allocates a command of `size` bytes whose first member is a td_write, wired
 * to this request: idempotency key and request hash, the renderer, and the
 * generic completion. Returns NULL after answering the error itself. */
void *td_face_new_write(td_req *r, size_t size, void (*render)(td_write *w));

/* "<prefix><json><suffix>", malloc'd: stored JSON is served without re-parsing. */
char *td_wrap(const char *prefix, const char *json, const char *suffix);
/* A renderer's answer: serializes v (steals the reference). */
void td_write_answer(td_write *w, int status, json_t *v);

/* Checks that every key of obj is in allowed (NULL-terminated). */
int td_json_only(json_t *obj, const char *where, const char *const *allowed, td_error *e);
/* Typed field access: returns 0 and the value, or -1 with e set. A missing
 * optional field returns 0 and NULL/default. */
int td_json_string(json_t *obj, const char *where, const char *key, bool required, size_t maxlen, const char **out,
                   td_error *e);
int td_json_object(json_t *obj, const char *where, const char *key, bool required, json_t **out, td_error *e);

/* The generic completion td_face_new_write wires: the answer, or the error in
 * the route's shape; then dispose and free. Faces that adjust an answer first
 * (Retry-After, a face-specific code) wrap it. */
void td_face_complete(td_write *w);
/* A body that may be absent: NULL with no error when the body is empty (or
 * only blanks); otherwise td_body_json. *failed tells the two NULLs apart. */
json_t *td_body_json_optional(td_req *r, bool *failed, td_error *e);

/* A string field checked by `ok` (NULL = any): required, or optional (absent
 * → *out NULL); embedded NULs are refused. The message names the field and,
 * if given, the rule (`rule`), never the value. */
int td_json_str_ok(json_t *obj, const char *where, const char *key, bool required, size_t maxlen,
                   bool (*ok)(const char *), const char *rule, const char **out, td_error *e);

/* ---- network tokenization identifiers and fields (docs/network.md) ---- */

/* issuerId: exactly 10 of [A-Za-z0-9_-]. */
bool td_issuer_id_ok(const char *s);
/* cardId (issuerCardRefId): ^[A-Za-z0-9_-]{1,48}$. */
bool td_card_id_ok(const char *s);
/* digitalCardId, operationId, consumerId, eventId, correlationId: ^[A-Za-z0-9_-]{1,64}$. */
bool td_ref_id_ok(const char *s);
/* reason: ^[a-zA-Z0-9 ]{1,64}$. */
bool td_reason_ok(const char *s);
/* A phone number: at most 39 characters of digits, '+', ' ', '-', '(' and ')',
 * with 7–15 digits (what td_mask_phone and an SMS need). */
bool td_phone_ok(const char *s);
/* An email: at most 255 bytes, exactly one '@' with both sides non-empty, no
 * blanks or control characters. */
bool td_email_ok(const char *s);
/* 1..max printable ASCII characters (0x20–0x7e). */
bool td_printable_ok(const char *s, size_t max);
/* An x-correlation-id header: 1–64 printable ASCII. */
bool td_correlation_header_ok(const char *s);

/* Token.io-style ids ("ta:...", "m:...", "rq:..."): [A-Za-z0-9:_-], 3..96. */
bool td_valid_id(const char *s);
/* Checks a path parameter as an id; answers 400 itself when it is not. */
bool td_param_id(td_req *r, int i, const char *name);

#endif
