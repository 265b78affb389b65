"""The namespace phase's parts: the step that labels (or creates) Traefik's namespace privileged."""
