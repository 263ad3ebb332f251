/* errors.c — the error registry's table. */
#include "core/errors.h"

#include <stdarg.h>
#include <stdio.h>

static const td_err_info TABLE[TD_E__COUNT] = {
    [TD_OK] = {"OK", 200, "OK", "OK", true, 0},
    [TD_E_BAD_JSON] = {"BAD_JSON", 400, "INVALID_ARGUMENT", "The request body is not valid JSON", true, 112},
    [TD_E_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", 400, "INVALID_ARGUMENT", "The client specified an invalid argument",
                               true, 112},
    [TD_E_BAD_PAGINATION] = {"BAD_PAGINATION", 400, "INVALID_ARGUMENT", "Invalid pagination parameters", true, 112},
    [TD_E_UNSUPPORTED_MEDIA] = {"UNSUPPORTED_MEDIA_TYPE", 415, "INVALID_ARGUMENT",
                                "The request body must be application/json", true, 112},
    [TD_E_BODY_TOO_LARGE] = {"BODY_TOO_LARGE", 413, "INVALID_ARGUMENT", "The request body is too large", true, 112},
    [TD_E_URI_TOO_LONG] = {"URI_TOO_LONG", 414, "INVALID_ARGUMENT", "The request URI is too long", true, 112},
    [TD_E_HEADERS_TOO_LARGE] = {"HEADERS_TOO_LARGE", 431, "INVALID_ARGUMENT", "The request headers are too large", true,
                                112},
    [TD_E_UNAUTHENTICATED] = {"UNAUTHENTICATED", 401, "UNAUTHENTICATED",
                              "The authorization information is missing or invalid", true, 113},
    [TD_E_PERMISSION_DENIED] = {"PERMISSION_DENIED", 403, "PermissionDenied",
                                "Permission to access this endpoint is denied", true, 113},
    [TD_E_NOT_FOUND] = {"NOT_FOUND", 404, "NOT_FOUND", "The requested entity was not found", true, 116},
    [TD_E_METHOD_NOT_ALLOWED] = {"METHOD_NOT_ALLOWED", 405, "INVALID_ARGUMENT", "Method not allowed on this path", true,
                                 112},
    [TD_E_IDEMPOTENCY_REUSED] = {"IDEMPOTENCY_KEY_REUSED", 409, "ALREADY_EXISTS",
                                 "This Idempotency-Key was used with a different request", true, 112},
    [TD_E_CONFLICT] = {"CONFLICT", 409, "ALREADY_EXISTS", "The entity already exists", true, 167},
    [TD_E_GONE] = {"GONE", 410, "FAILED_PRECONDITION", "This link was already used or has expired", true, 118},
    [TD_E_RATE_LIMITED] = {"RATE_LIMITED", 429, "RESOURCE_EXHAUSTED", "Too many requests", true, 321},
    [TD_E_INTERNAL] = {"INTERNAL", 500, "InternalServerError", "An unexpected or internal server error", false, 0},
    [TD_E_NOT_IMPLEMENTED] = {"NOT_IMPLEMENTED", 501, "UNIMPLEMENTED", "The operation is not implemented by tokend",
                              false, 911},
    [TD_E_UNAVAILABLE] = {"UNAVAILABLE", 503, "UNAVAILABLE", "Service is unavailable, retry later", false, 921},
    [TD_E_NOT_ALLOWED_IN_STATE] = {"NOT_ALLOWED_IN_STATE", 409, "FAILED_PRECONDITION",
                                   "The operation is not allowed in the current state", true, 432},
    [TD_E_TSP_FAILED] = {"TSP_FAILED", 502, "UNAVAILABLE", "The token service provider refused or failed the operation",
                         false, 911},
    [TD_E_TSP_TIMEOUT] = {"TSP_TIMEOUT", 504, "DEADLINE_EXCEEDED", "The token service provider did not answer in time",
                          false, 911},
    [TD_E_TIMEOUT] = {"DEADLINE_EXCEEDED", 504, "DEADLINE_EXCEEDED", "The operation did not complete in time", false,
                      921},
};

const td_err_info *td_err_lookup(td_err code)
{
    if ((int)code < 0 || code >= TD_E__COUNT) code = TD_E_INTERNAL;
    return &TABLE[code];
}

td_err td_fail(td_error *e, td_err code, const char *fmt, ...)
{
    if (e) {
        e->code = code;
        e->classic = 0;
        e->detail[0] = 0;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->detail, sizeof e->detail, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}
