"""The helm phase's parts: the step that finds or installs a checksum-verified helm binary
(the binary's download, checksum and probing are in adapters/helmbin.py and adapters/download.py)."""
