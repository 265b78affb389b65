"""Keep secrets out of everything labup prints or writes: PEM keys, tokens, kubeconfig credentials."""

from __future__ import annotations

import re
from typing import Any

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE)-----.*?(-----END [A-Z0-9 ]*-----|$)",
                  re.DOTALL)
# key: value pairs whose value is a credential (Talos machine config, kubeconfig, bearer headers)
_SECRET_KV = re.compile(
    r"(?im)^(\s*-?\s*(?:key|token|secret|password|client-key-data|client-certificate-data|"
    r"certificate-authority-data|secretboxEncryptionSecret|aescbcEncryptionSecret|bootstraptoken|"
    r"crt|id-token|refresh-token|x-api-key|api[_-]?key|client[_-]?secret|password)\s*:\s*)(\S.*)$")
_BEARER = re.compile(r"(?i)(authorization:\s*bearer\s+|bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_NAMES = (r"(?:key|token|secret|password|passwd|client-key-data|client-certificate-data|certificate-authority-data|"
          r"access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key|x-api-key|client[_-]?secret|"
          r"secret[_-]?access[_-]?key|session[_-]?token|crt)")
# "token": "..." (JSON) or 'token': '...' (a Python dict), as exec plugins and tools print them
_JSON_KV = re.compile(rf'(?i)(["\']{_NAMES}["\']\s*:\s*)(["\'])(?:(?!\2)[^\\]|\\.)*\2')
# Authorization: Basic ..., https://user:password@host, AWS access key ids, bare JWTs
_BASIC = re.compile(r"(?i)(authorization:\s*basic\s+)[A-Za-z0-9+/=]{6,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]+:)[^\s/@]+@")
_AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# token=..., password=...: URLs, log fields, environment dumps
_ASSIGN = re.compile(rf"(?i)(\b{_NAMES}=)[^\s&,;\"']+")
# {token: abc, ...}: flow-style YAML on one line
_FLOW_KV = re.compile(rf"(?i)([{{,]\s*{_NAMES}\s*:\s*)([^,}}\s][^,}}]*)")

MASK = "<redacted>"


def redact(text: str) -> str:
    """Mask credentials in free text (a tool's stderr, an error message)."""
    text = _PEM.sub(f"{MASK} (PEM block)", text)
    text = _SECRET_KV.sub(lambda m: m.group(1) + MASK, text)
    text = _JSON_KV.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    text = _BASIC.sub(lambda m: m.group(1) + MASK, text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _AWS_KEY.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _ASSIGN.sub(lambda m: m.group(1) + MASK, text)
    text = _FLOW_KV.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def redact_obj(value: Any) -> Any:
    """Mask credentials inside JSON-like data before it is journaled or printed."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in _SECRET_KEYS else redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value


_SECRET_KEYS = {"key", "token", "secret", "password", "client-key-data", "client-certificate-data",
                "bootstraptoken", "secretboxencryptionsecret", "aescbcencryptionsecret", "crt"}
