"""cert-manager for topology: ha: its pinned chart's values (validated offline against that chart's
own schema) and its Helm release (release.py), a backed-up certificate carried over into its Secret
(carryover.py), and the Issuer and Certificate labup creates itself, outside any Helm release
(objects.py)."""
