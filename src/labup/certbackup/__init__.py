"""Traefik's certificates beyond the one node: acme.json read from the node that runs Traefik (Talos'
Read API), judged (store.py: never a key shown), and kept as local backups (backups.py)."""
