"""The phase engine: steps, runner, retries, journal and lock. Knows nothing of Talos or Traefik."""
