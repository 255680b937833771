"""The Kubernetes API subset of the twin: objects, tables, discovery, validation, routes."""
