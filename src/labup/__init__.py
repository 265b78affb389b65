"""labup: from "Kubernetes is up" to "HTTPS on a stable address" on a Talos homelab."""

__version__ = "0.1.0"
