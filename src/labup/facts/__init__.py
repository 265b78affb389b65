"""Per-run snapshots of outside facts (Talos, Helm releases, Kubernetes objects), read lazily and once.

Kept in the run's RunShared (engine/shared.py), so every phase and verify check of one command reads a
fact at most once; a write drops what it changed. This layer sits between adapters (which it uses) and
phases/checks (which use it); it imports neither phases nor the command line.
"""
