"""Sans-IO HTTP/1.x proxy logic: routing, URIs, header building, framing, retry decisions, variables."""
