"""The REST API families of the test server, one module each: its routes and handlers.

Each class is a mixin of ``EsTestServer`` (server.py); ``routes_<family>`` lists its routes in
the order they are matched (first match wins).
"""
