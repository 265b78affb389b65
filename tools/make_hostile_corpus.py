#!/usr/bin/env python3
"""Writes tests/fixtures/hostile/: one hostile input per file, each refused with exit 2 (test_hostile.py).

`lab-*.yaml` replaces lab.yaml; `values-*.yaml` is used as traefik.values of the example lab. Each file
starts with `# expect: <text>`: what the error must say. Run again after changing a case; the files
are committed so a reader sees exactly what is fed to labup.
"""

from __future__ import annotations

import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hostile"
# a valid lab (documentation addresses) that each `lab-` case breaks in one place
BASE = """\
name: tazlab
nodes:
  - name: talos-unw-ifc
    address: 192.0.2.253
    role: controlplane
  - name: talos-worker-1
    address: 192.0.2.127
    role: worker
vip:
  address: 192.0.2.250
  interface: ens18
talos:
  endpoints: []
kubernetes:
  kubeconfig: null
helm:
  version: 4.1.4
traefik:
  namespace: traefik
  chart: traefik/traefik
  repo_url: https://traefik.github.io/charts
  domains:
    - lab.example.net
  acme:
    email: admin@lab.example.net
    storage_dir: /var/mnt/traefik
  values: null
verify:
  timeout_s: 5
  ca_file: null
retry:
  attempts: 5
"""


def example() -> str:
    return BASE


def with_line(old: str, new: str) -> str:
    text = example()
    assert old in text, old
    return text.replace(old, new, 1)


def cases() -> dict[str, tuple[str, str | bytes]]:
    out: dict[str, tuple[str, str | bytes]] = {}
    ctl = [c for c in range(0x20) if c not in (0x09, 0x0a, 0x0d)] + [0x7f]
    for c in ctl:  # every control character YAML does not allow, in a value
        out[f"lab-control-{c:02x}"] = (f"control character 0x{c:02x}",
                                       with_line("name: tazlab", f"name: taz{chr(c)}lab"))
    out["values-control-1b"] = ("control character 0x1b", "image:\n  tag: \"v3\x1b]0;owned\x07\"\n")
    # characters PyYAML reads as line breaks where editors and grep see one comment line, C1 controls,
    # bidi overrides: a key could hide in what looks like a comment
    hidden = {"2028": "\u2028", "2029": "\u2029", "85": "\x85", "80": "\x80", "9b": "\x9b", "202e": "\u202e",
              "fffe": "\ufffe"}
    for name, char in hidden.items():
        out[f"lab-hidden-{name}"] = (f"control character 0x{ord(char):02x}",
                                     with_line("  interface: ens18", f"  interface: ens18  # a comment{char}  mtu: 1"))
    out["values-hidden-2028"] = ("control character 0x2028", "image: {}  # note\u2028tag: x\n")
    tags = {
        "int": ("name: !!int abc", "line 2: the value is not a valid int"),
        "float": ("name: !!float abc", "line 2: the value is not a valid float"),
        "bool": ("name: !!bool maybe", "line 2: the value is not a valid bool"),
        "timestamp": ("name: !!timestamp nope", "line 2: the value is not a valid timestamp"),
        "date": ("name: 2001-13-45", "line 2: the value is not a valid timestamp"),
        "date-feb30": ("name: 2001-02-30", "line 2: the value is not a valid timestamp"),
        "binary": ("name: !!binary '%%%'", "name: expected a string, got bytes"),
        "python-object": ("name: !!python/object:os.system ls", "could not determine a constructor"),
        "python-name": ("name: !!python/name:os.system ''", "could not determine a constructor"),
        "python-apply": ("name: !!python/object/apply:os.system [ls]", "could not determine a constructor"),
        "unknown-tag": ("name: !mine x", "could not determine a constructor"),
        "set": ("name: !!set {a, b}", "name: expected a string, got set"),
    }
    for key, (line, expect) in tags.items():
        out[f"lab-tag-{key}"] = (expect, with_line("name: tazlab", line))
    out["lab-int-digits"] = ("the value is not a valid int", with_line("name: tazlab", "name: " + "9" * 5000))
    out["lab-int-hex"] = ("name: expected a string", with_line("name: tazlab", "name: 0x" + "f" * 5000))
    out["lab-int-octal"] = ("name: expected a string, got an integer", with_line("name: tazlab", "name: 017"))
    out["lab-int-binary"] = ("name: expected a string, got an integer",
                             with_line("name: tazlab", "name: 0b" + "1" * 20000))
    out["lab-deep-list"] = ("nested deeper than 64 levels", "[" * 5000)
    out["lab-deep-map"] = ("nested deeper than 64 levels", "{a: " * 3000)
    out["lab-deep-block"] = ("nested deeper than 64 levels", "".join("  " * i + "a:\n" for i in range(200)))
    out["values-deep-list"] = ("nested deeper than 64 levels", "x: " + "[" * 5000)
    out["values-deep-map"] = ("nested deeper than 64 levels", "{a: " * 3000)
    bomb = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}]\n" for i in range(1, 21))
    out["values-alias-bomb"] = ("once aliases are expanded", bomb)
    out["lab-alias-bomb"] = ("once aliases are expanded", example() + "x-" + bomb.replace("\na", "\nx-a"))
    wide = "a0: &a0 [" + ", ".join(["x"] * 60) + "]\n" + "".join(
        f"a{i}: &a{i} [*a{i-1}, *a{i-1}]\n" for i in range(1, 15))
    out["values-alias-wide"] = ("once aliases are expanded", wide)
    out["values-alias-many"] = ("more than 64 YAML aliases", "a: &a x\nb: [" + ", ".join(["*a"] * 70) + "]\n")
    out["lab-dup-top"] = ("duplicate key 'name'", example() + "name: other\n")
    out["lab-dup-nested"] = ("duplicate key 'address'",
                             with_line("  interface: ens18", "  interface: ens18\n  address: 192.0.2.251"))
    out["values-dup"] = ("duplicate key 'image'", "image: {}\nimage: {}\n")
    out["lab-top-list"] = ("expected a mapping, got a list", "- a\n- b\n")
    out["lab-top-scalar"] = ("expected a mapping, got a string", "just text\n")
    out["lab-top-number"] = ("expected a mapping, got an integer", "42\n")
    out["lab-empty"] = ("is empty", "# nothing\n")
    out["lab-two-docs"] = ("found another document", example() + "---\nname: second\n")
    out["lab-latin1"] = ("not UTF-8 text", example().replace("name: tazlab", "name: taz\xe9lab").encode("latin-1"))
    out["lab-utf16"] = ("not UTF-8 text", example().encode("utf-16"))
    out["lab-bad-utf8"] = ("not UTF-8 text", example().encode() + b"\xff\xfe\xfd\n")
    out["lab-recursive"] = ("recursive", "a: &a [*a]\n")
    out["lab-tab-indent"] = ("invalid YAML", "name: x\n\tnodes: []\n")
    out["lab-unclosed"] = ("invalid YAML", "name: 'x\n")
    out["lab-long-scalar"] = ("a value longer than 64 KiB", with_line("name: tazlab", "name: " + "a" * 70000))
    out["values-long-scalar"] = ("a value longer than 64 KiB", "x: " + "a" * 70000 + "\n")
    typos = {
        "traefk": ("traefk: unknown key", "\ntraefik:", "\ntraefk:"),
        "adress": ("vip.adress: unknown key", "  address: 192.0.2.250", "  adress: 192.0.2.250"),
        "rol": ("nodes[0].rol: unknown key", "role: controlplane", "rol: controlplane"),
        "emial": ("traefik.acme.emial: unknown key", "    email:", "    emial:"),
        "verfiy": ("verfiy: unknown key", "\nverify:", "\nverfiy:"),
    }
    for key, (expect, old, new) in typos.items():
        out[f"lab-typo-{key}"] = (expect, with_line(old, new))
    fields = {
        "endpoint-comma": ("talos.endpoints[0]", "  endpoints: []", "  endpoints: ['cp-1:50000,192.0.2.250']"),
        "endpoint-port": ("talos.endpoints[0]", "  endpoints: []", "  endpoints: ['cp-1:99999']"),
        "endpoint-port-zero": ("talos.endpoints[0]", "  endpoints: []", "  endpoints: ['cp-1:0']"),
        "endpoint-flag": ("talos.endpoints[0]", "  endpoints: []", "  endpoints: ['--talosconfig=/etc/x']"),
        "endpoint-vip": ("is the VIP", "  endpoints: []", "  endpoints: ['192.0.2.250:50000']"),
        "endpoint-v6-port": ("talos.endpoints[0]", "  endpoints: []", "  endpoints: ['[2001:db8::1]:x']"),
        "chart-flag": ("traefik.chart", "  chart: traefik/traefik", "  chart: '--post-renderer=x/y'"),
        "chart-shell": ("traefik.chart", "  chart: traefik/traefik", "  chart: 'traefik/traefik;reboot'"),
        "domain-subst": ("traefik.domains[0]", "    - lab.example.net", "    - '$(reboot).lab.example.net'"),
        "domain-markup": ("traefik.domains[0]", "    - lab.example.net", "    - '[/x].lab.example.net'"),
        "domain-escape": ("traefik.domains[0]", "    - lab.example.net", "    - \"lab.example.net\\e]0;x\\a\""),
        "email-newline": ("traefik.acme.email", "    email: admin@lab.example.net", "    email: \"a@b.net\\nX: y\""),
        "namespace-system": ("traefik.namespace", "  namespace: traefik", "  namespace: kube-system"),
        "interface-shell": ("vip.interface", "  interface: ens18", "  interface: 'ens18;rm'"),
        "interface-markup": ("vip.interface", "  interface: ens18", "  interface: '[bold]x'"),
        "storage-dotdot": ("traefik.acme.storage_dir", "    storage_dir: /var/mnt/traefik",
                           "    storage_dir: /var/../etc"),
        "storage-relative": ("traefik.acme.storage_dir", "    storage_dir: /var/mnt/traefik", "    storage_dir: var/x"),
        "values-devzero": ("not a regular file", "  values: null", "  values: /dev/zero"),
        "values-dir": ("'/' is a directory", "  values: null", "  values: /"),
        "values-missing": ("does not exist", "  values: null", "  values: /nonexistent/values.yaml"),
        "values-nul": ("not a valid path", "  values: null", "  values: \"a\\0b\""),
        "cafile-dir": ("verify.ca_file", "  ca_file: null", "  ca_file: /"),
        "cafile-missing": ("verify.ca_file", "  ca_file: null", "  ca_file: /nonexistent.pem"),
        "timeout-huge": ("verify.timeout_s", "  timeout_s: 5\n", "  timeout_s: 1e308\n"),
        "timeout-nan": ("verify.timeout_s", "  timeout_s: 5\n", "  timeout_s: .nan\n"),
        "timeout-neg": ("verify.timeout_s", "  timeout_s: 5\n", "  timeout_s: -1\n"),
        "retry-bool": ("retry.attempts", "  attempts: 5", "  attempts: true"),
        "vip-v6-prefix": ("vip.address", "  address: 192.0.2.250", "  address: '2001:db8::1/64'"),
        "node-name-long": ("nodes[0].name", "  - name: talos-unw-ifc", "  - name: " + "a" * 300),
        "node-address-host": ("nodes[0].address", "address: 192.0.2.253", "address: 'cp-1.local'"),
        "kubeconfig-nul": ("kubernetes.kubeconfig", "  kubeconfig: null", "  kubeconfig: \"a\\0b\""),
        "helm-version": ("helm.version", "  version: 4.1.4", "  version: '4.1.4; rm -rf /'"),
        "repo-url-file": ("traefik.repo_url", "  repo_url: https://traefik.github.io/charts", "  repo_url: 'file:///etc'"),
        "name-unicode": ("name: ", "name: tazlab", "name: ταζλαβ"),
    }
    for key, (expect, old, new) in fields.items():
        out[f"lab-field-{key}"] = (expect, with_line(old, new))
    values = {
        "list": ("expected a mapping of Helm values", "- a\n"),
        "scalar": ("expected a mapping of Helm values", "hello\n"),
        "redirect-to": ("redirectTo", "ports:\n  web:\n    redirectTo: websecure\n"),
        "replicas": ("deployment.replicas", "deployment:\n  replicas: 3\n"),
        "int-key": ("key", "1: x\n"),
        "markup": ("additional properties", "'[link=http://evil]x[/link]': 1\n"),
    }
    for key, (expect, text) in values.items():
        out[f"values-{key}"] = (expect, text)
    return out


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for name, (expect, body) in sorted(cases().items()):
        head = f"# expect: {expect}\n".encode()
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        if name.startswith("lab-utf16"):
            (OUT / f"{name}.yaml").write_bytes(data)  # a header would make it half UTF-8
            (OUT / f"{name}.expect").write_text(expect + "\n")
            continue
        (OUT / f"{name}.yaml").write_bytes(head + data)
    print(f"{len(cases())} cases in {OUT}")


if __name__ == "__main__":
    main()
