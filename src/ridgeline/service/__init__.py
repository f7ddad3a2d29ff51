"""The HTTP API: FastAPI over the library, with API keys, roles and rate limits.

Import `ridgeline.service.app.create_app` to build the app; this package stays light
so that the CLI can import key management without loading FastAPI.
"""
