"""The Kubernetes API subset of the twin: routes, resources, objects, tables, logs."""
