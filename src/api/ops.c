/* ops.c — operations endpoints: liveness, readiness (a write can commit), and
 * Prometheus metrics. */
#include <string.h>

#include "api/faces.h"

void td_ops_healthz(td_req *r)
{
    td_reply_json_copy(r, 200, "{\"status\":\"ok\"}", 15);
}

void td_ops_readyz(td_req *r)
{
    char why[256];
    if (td_svc_ready(r->svc, why, sizeof why)) {
        td_reply_json_copy(r, 200, "{\"status\":\"ready\"}", 18);
        return;
    }
    td_reply_err(r, TD_E_UNAVAILABLE, why);
}

void td_ops_metrics(td_req *r)
{
    char *text = td_metrics_render(r->srv);
    td_reply_json_steal(r, 200, text);
    r->content_type = "text/plain; version=0.0.4";
}
