"""Traefik's Helm values, offline: the pinned chart (pin), the values template filled from lab.yaml
(template, values), the merge with the user's own values file (tree), labup's guards (guards) and the
chart's own schema (schema). Nothing here spawns a process or opens a socket: `labup render traefik`
and the traefik phase's pre-flight share this code, so whatever is refused is refused before any
helm or Kubernetes call."""
