"""The web UI: server-rendered pages under `/ui/` over the same library functions and
the same roles (`ridgeline.service.auth.POLICY`) as the HTTP API."""
