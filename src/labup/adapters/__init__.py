"""One module per outside system: the only code in labup that spawns a process or opens a socket."""
