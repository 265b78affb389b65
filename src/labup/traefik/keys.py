"""Key paths inside Helm values, and the error that names one (exit 2: invalid input)."""

from __future__ import annotations

from labup.errors import ConfigError

Key = tuple[str | int, ...]

USER_SOURCE = "traefik.values"  # the lab.yaml field naming the user's extra values file
TEMPLATE_SOURCE = "phases/traefik/values.yaml.tmpl"


def dotted(key: Key) -> str:
    """`('ports', 'web', 'redirectTo')` -> `ports.web.redirectTo`; list items as `[0]`."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class ValuesError(ConfigError):
    """A Helm value labup refuses. The message reads `traefik.values: <key path>: <reason>`: the
    lab.yaml field that brought the file in, then the key inside it, so the user can find both."""

    def __init__(self, key: Key, reason: str, hint: str | None = None, source: str = USER_SOURCE) -> None:
        super().__init__(source, f"{dotted(key)}: {reason}", hint)
        self.key = key
        self.reason = reason
        self.source = source

    def from_source(self, source: str) -> ValuesError:
        """The same problem, blamed on another file (the template, when the user's file is not it)."""
        return ValuesError(self.key, self.reason, self.hint, source)
