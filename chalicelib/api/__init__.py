"""HTTP blueprints: read the request, call one service, shape the answer."""
