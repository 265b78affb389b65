"""`labup status`: where everything is now, read only.

model.py: what one reading of the lab holds (each part known, or unknown with the reason), the
paradox judgement (the VIP's holder has no ready Traefik pod) and the --json document; reads.py: the
reads, run concurrently under verify.timeout_s by the verify check engine, through the run's fact
snapshots (Talos, Kubernetes, Helm's records), the certificate the VIP serves and the journal.
"""
