"""The only part of authml that talks to Elasticsearch. Everything here that builds a request is a
pure function of plain data; the few functions that send requests take a client."""
