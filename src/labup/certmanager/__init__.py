"""cert-manager for topology: ha: its pinned chart's values (validated offline against that chart's
own schema) and its Helm release. The Issuer and Certificate travel in Traefik's release
(phases/traefik/values-ha.yaml.tmpl), which needs this release's CRDs first."""
