// /api/v1/openapi.json (the API's description) and /metrics (Prometheus).
#include "server/api.h"
#include "server/metrics.h"

namespace sp::server {

void AddMetaRoutes(Router* router, ApiContext* api) {
  router->Add({"GET", std::string(kApiPrefix) + "/openapi.json", Role::kViewer,
               "This API's OpenAPI 3 document", [api](RouteContext&) {
                 HttpResponse response;
                 response.body = api->openapi;
                 return response;
               }});
  router->Add({"GET", "/metrics", Role::kViewer, "Metrics in Prometheus' text format",
               [api](RouteContext&) {
                 auto text = api->metrics->Render();
                 if (!text.ok()) return ErrorResponse(text.status());
                 HttpResponse response;
                 response.content_type = "text/plain; version=0.0.4";
                 response.body = *text;
                 return response;
               }});
}

}  // namespace sp::server
