"""The talosctl simulator itself, driven as a real subprocess the way labup drives talosctl."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from talos_sim import SECRET_MARKER, Lab, Link
from talos_sim.fixtures import EXAMPLE_CP, EXAMPLE_VIP, EXAMPLE_WORKER, TalosSim, sim_factory, start_sim

UNAVAILABLE_CP = (
    'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
    f'dial tcp {EXAMPLE_CP}:50000: connect: no route to host"'
)
PATCHED_CP = f"patched MachineConfigs.config.talos.dev/v1alpha1 at the node {EXAMPLE_CP}"
NEW_FORM_VIP = f"apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\nlink: ens18\n"
LEGACY_VIP = (
    "machine:\n  network:\n    interfaces:\n      - interface: ens18\n        dhcp: true\n"
    f"        vip:\n          ip: {EXAMPLE_VIP}\n"
)


@pytest.fixture
def sim(tmp_path: Path) -> TalosSim:
    """The example lab on Talos v1.13.0 (not put on PATH: tests call sim.run)."""
    return start_sim(tmp_path / "sim")


@pytest.fixture
def legacy(tmp_path: Path) -> TalosSim:
    return start_sim(tmp_path / "legacy", Lab.single_cp_worker("v1.11.5"))


def patch_file(tmp_path: Path, text: str, name: str = "patch.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"@{path}"


def patch(sim: TalosSim, node: str, *patches: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = ["-n", node, "patch", "machineconfig", "--mode", "no-reboot", *extra]
    for p in patches:
        args += ["--patch", p]
    return sim.run(*args)


def stream(text: str) -> list[dict[str, Any]]:
    """Parse concatenated JSON objects, as labup must."""
    decoder, pos, out = json.JSONDecoder(), 0, []
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def get(sim: TalosSim, node: str, *what: str) -> list[dict[str, Any]]:
    result = sim.run("-n", node, "get", *what, "-o", "json")
    assert result.returncode == 0, result.stderr
    return stream(result.stdout)


def address_ids(sim: TalosSim, node: str) -> list[str]:
    return [r["metadata"]["id"] for r in get(sim, node, "addresses")]


# -- reading ------------------------------------------------------------------------------------


def test_get_json_is_a_stream_of_objects_with_node_metadata_spec(sim: TalosSim) -> None:
    result = sim.run("-n", EXAMPLE_CP, "get", "links", "-o", "json")
    assert result.returncode == 0
    assert result.stdout.lstrip().startswith("{")  # not an array
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)  # two objects: only a stream parser reads it
    links = {r["metadata"]["id"]: r for r in stream(result.stdout)}
    assert set(links) == {"ens18", "lo"}
    ens18 = links["ens18"]
    assert ens18["node"] == EXAMPLE_CP
    assert ens18["metadata"]["type"] == "LinkStatuses.net.talos.dev"
    assert {"namespace", "type", "id", "version", "owner", "phase", "created", "updated"} <= set(ens18["metadata"])
    assert ens18["spec"]["type"] == "ether" and ens18["spec"]["kind"] == ""
    assert ens18["spec"]["operationalState"] == "up"
    assert ens18["spec"]["hardwareAddr"].count(":") == 5

    assert [r["spec"] for r in get(sim, EXAMPLE_CP, "machinetype")] == ["controlplane"]
    assert [r["spec"] for r in get(sim, EXAMPLE_WORKER, "machinetype")] == ["worker"]
    assert get(sim, EXAMPLE_WORKER, "nodename")[0]["spec"]["nodename"] == "talos-worker-1"
    addrs = {r["metadata"]["id"]: r["spec"] for r in get(sim, EXAMPLE_CP, "addresses")}
    assert addrs[f"ens18/{EXAMPLE_CP}/24"]["linkName"] == "ens18"
    assert addrs[f"ens18/{EXAMPLE_CP}/24"]["family"] == "inet4"


def test_multi_node_get_and_version(sim: TalosSim) -> None:
    both = get(sim, f"{EXAMPLE_CP},{EXAMPLE_WORKER}", "machinetype")
    assert [(r["node"], r["spec"]) for r in both] == [(EXAMPLE_CP, "controlplane"), (EXAMPLE_WORKER, "worker")]
    version = sim.run("-n", EXAMPLE_CP, "version")
    assert version.returncode == 0
    server = version.stdout.split("Server:\n", 1)[1]
    assert f"\tNODE:        {EXAMPLE_CP}\n\tTag:         v1.13.0\n" in server
    assert version.stdout.startswith("Client:\n\tTag:         v1.13.9\n")


def test_machineconfig_jsonpath_spec_is_the_raw_config(sim: TalosSim, legacy: TalosSim) -> None:
    for args in (("-o", "jsonpath={.spec}"), ("--output=jsonpath={.spec}",)):
        result = sim.run("-n", EXAMPLE_CP, "get", "machineconfig", "v1alpha1", *args)
        assert result.returncode == 0
        docs = list(yaml.safe_load_all(result.stdout))
        assert [d.get("kind", "v1alpha1") for d in docs] == ["v1alpha1", "HostnameConfig"]
        assert SECRET_MARKER in docs[0]["machine"]["ca"]["key"]
        assert SECRET_MARKER in docs[0]["cluster"]["token"]
    old = legacy.run("-n", EXAMPLE_CP, "get", "machineconfig", "v1alpha1", "-o", "jsonpath={.spec}")
    assert len(list(yaml.safe_load_all(old.stdout))) == 1  # <= 1.11: one document


# -- new-form VIP --------------------------------------------------------------------------------


def test_new_form_patch_applies_then_repatch_is_skipped(sim: TalosSim, tmp_path: Path) -> None:
    vip = patch_file(tmp_path, NEW_FORM_VIP)
    first = patch(sim, EXAMPLE_CP, vip)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert f"{PATCHED_CP}\nApplied configuration without a reboot\n" in first.stderr
    assert f"ens18/{EXAMPLE_VIP}/32" in address_ids(sim, EXAMPLE_CP)
    assert sim.config_of(EXAMPLE_CP)[-1] == {
        "apiVersion": "v1alpha1",
        "kind": "Layer2VIPConfig",
        "name": EXAMPLE_VIP,
        "link": "ens18",
    }

    again = patch(sim, EXAMPLE_CP, vip)
    assert again.returncode == 0
    assert again.stderr.endswith("Apply was skipped: no changes detected.\n")
    assert "patched" not in again.stderr
    assert len(sim.calls(verb="patch")) == 2
    assert sim.calls(verb="patch")[0]["patches"] == [NEW_FORM_VIP]


def test_layer2vip_on_a_worker_is_accepted_but_never_comes_up(sim: TalosSim, tmp_path: Path) -> None:
    result = patch(sim, EXAMPLE_WORKER, patch_file(tmp_path, NEW_FORM_VIP))
    assert result.returncode == 0
    assert not any(EXAMPLE_VIP in a for a in address_ids(sim, EXAMPLE_WORKER))
    assert sim.holder() is None


def test_layer2vip_is_an_unknown_kind_before_1_12(legacy: TalosSim, tmp_path: Path) -> None:
    before = legacy.config_text(EXAMPLE_CP)
    result = patch(legacy, EXAMPLE_CP, patch_file(tmp_path, NEW_FORM_VIP))
    assert result.returncode == 1
    assert (
        f'* {EXAMPLE_CP}: rpc error: code = InvalidArgument desc = "Layer2VIPConfig" "v1alpha1": not registered'
        in result.stderr
    )
    assert legacy.config_text(EXAMPLE_CP) == before


def test_dry_run_prints_a_diff_and_changes_nothing(sim: TalosSim, tmp_path: Path) -> None:
    before = sim.config_text(EXAMPLE_CP)
    result = patch(sim, EXAMPLE_CP, patch_file(tmp_path, NEW_FORM_VIP), extra=("--dry-run",))
    assert result.returncode == 0
    assert "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n" in result.stderr
    assert "Config diff:\n\n--- a\n+++ b\n" in result.stderr
    assert "+kind: Layer2VIPConfig\n" in result.stderr
    assert sim.config_text(EXAMPLE_CP) == before
    assert sim.holder() is None


def test_delete_a_document_and_deleting_it_twice_fails(sim: TalosSim, tmp_path: Path) -> None:
    assert patch(sim, EXAMPLE_CP, patch_file(tmp_path, NEW_FORM_VIP)).returncode == 0
    delete = patch_file(tmp_path, f"apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\n$patch: delete\n")
    result = patch(sim, EXAMPLE_CP, delete)
    assert result.returncode == 0, result.stderr
    assert all(d.get("kind") != "Layer2VIPConfig" for d in sim.config_of(EXAMPLE_CP))
    assert sim.holder() is None
    before = sim.config_text(EXAMPLE_CP)
    absent = patch(sim, EXAMPLE_CP, delete)  # the leftover selector reaches the node as `{}`
    assert absent.returncode == 1
    assert "desc = duplicate document /v1alpha1/ is not allowed" in absent.stderr
    assert sim.config_text(EXAMPLE_CP) == before


def test_json6902_fails_on_a_multi_document_config(sim: TalosSim, legacy: TalosSim, tmp_path: Path) -> None:
    ops = patch_file(tmp_path, "- op: add\n  path: /machine/network/hostname\n  value: cp\n")
    result = patch(sim, EXAMPLE_CP, ops)
    assert result.returncode == 1
    assert result.stderr.endswith("JSON6902 patches are not supported for multi-document machine configuration\n")
    assert patch(legacy, EXAMPLE_CP, ops).returncode == 0  # one document: applied
    assert legacy.config_of(EXAMPLE_CP)[0]["machine"]["network"]["hostname"] == "cp"


# -- legacy form ---------------------------------------------------------------------------------


def test_legacy_vip_merges_into_the_existing_interface_entry(legacy: TalosSim, tmp_path: Path) -> None:
    with legacy.edit() as lab:  # the operator already lists ens18
        node = lab.node(EXAMPLE_CP)
        docs = yaml.safe_load_all(node.config)
        v1 = next(docs)
        v1["machine"]["network"] = {"interfaces": [{"interface": "ens18", "dhcp": True, "mtu": 1500}]}
        node.config = yaml.safe_dump(v1, sort_keys=False)
    result = patch(legacy, EXAMPLE_CP, patch_file(tmp_path, LEGACY_VIP))
    assert result.returncode == 0, result.stderr
    interfaces = legacy.config_of(EXAMPLE_CP)[0]["machine"]["network"]["interfaces"]
    assert interfaces == [{"interface": "ens18", "dhcp": True, "mtu": 1500, "vip": {"ip": EXAMPLE_VIP}}]
    ids = address_ids(legacy, EXAMPLE_CP)
    assert f"ens18/{EXAMPLE_CP}/24" in ids and f"ens18/{EXAMPLE_VIP}/32" in ids


def test_new_legacy_entry_without_dhcp_loses_the_address(tmp_path: Path) -> None:
    lab = Lab.single_cp_worker("v1.11.5")
    cp = lab.node(EXAMPLE_CP)  # give the CP a second NIC so it stays reachable to show the loss
    cp.links.append(Link(name="ens19", mac="bc:24:11:00:00:19"))
    cp.base_addresses.append("ens19/192.0.2.21/24")
    sim = start_sim(tmp_path / "sim", lab)
    no_dhcp = "machine:\n  network:\n    interfaces:\n      - interface: ens19\n        mtu: 1500\n"
    assert patch(sim, EXAMPLE_CP, patch_file(tmp_path, no_dhcp)).returncode == 0
    ids = address_ids(sim, EXAMPLE_CP)
    assert "ens19/192.0.2.21/24" not in ids and f"ens18/{EXAMPLE_CP}/24" in ids

    # on the API link the node drops off the network: every later call is Unavailable
    no_dhcp_api = "machine:\n  network:\n    interfaces:\n      - interface: ens18\n        mtu: 1500\n"
    assert patch(sim, EXAMPLE_CP, patch_file(tmp_path, no_dhcp_api)).returncode == 0
    assert f"ens18/{EXAMPLE_CP}/24" not in sim.addresses(EXAMPLE_CP)
    after = sim.run("-n", EXAMPLE_CP, "get", "addresses", "-o", "json")
    assert (after.returncode, after.stderr) == (1, UNAVAILABLE_CP + "\n")


def test_legacy_vip_on_a_worker_is_rejected_with_the_exact_text(legacy: TalosSim, tmp_path: Path) -> None:
    before = legacy.config_text(EXAMPLE_WORKER)
    result = patch(legacy, EXAMPLE_WORKER, patch_file(tmp_path, LEGACY_VIP))
    assert result.returncode == 1
    assert (
        "1 error occurred:\n"
        f"\t* {EXAMPLE_WORKER}: rpc error: code = InvalidArgument desc = 1 error occurred:\n"
        "\t* v1alpha1.Config: 1 error occurred:\n"
        "\t* virtual (shared) IP is not allowed on non-controlplane nodes\n"
    ) in result.stderr
    assert legacy.config_text(EXAMPLE_WORKER) == before  # nothing applied


def test_delete_a_list_entry_and_readd_it_in_the_same_patch(legacy: TalosSim, tmp_path: Path) -> None:
    assert patch(legacy, EXAMPLE_CP, patch_file(tmp_path, LEGACY_VIP)).returncode == 0
    rollback = (
        "machine:\n  network:\n    interfaces:\n"
        "      - interface: ens18\n        $patch: delete\n"
        "      - interface: ens18\n        dhcp: true\n"
    )
    result = patch(legacy, EXAMPLE_CP, patch_file(tmp_path, rollback))
    assert result.returncode == 0, result.stderr
    assert legacy.config_of(EXAMPLE_CP)[0]["machine"]["network"]["interfaces"] == [{"interface": "ens18", "dhcp": True}]
    assert legacy.holder() is None

    only_delete = "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        $patch: delete\n"
    absent = patch(legacy, EXAMPLE_CP, patch_file(tmp_path, only_delete))
    assert absent.returncode == 1
    assert absent.stderr.endswith(
        "patch delete: path 'machine.network.interfaces.[0]' in document '/v1alpha1': "
        "failed to delete path 'machine.network.interfaces.[0]': lookup failed\n"
    )


def test_deleting_an_inner_key_of_a_list_element_fails(legacy: TalosSim, tmp_path: Path) -> None:
    inner = "machine:\n  network:\n    interfaces:\n      - interface: ens18\n        vip:\n          $patch: delete\n"
    result = patch(legacy, EXAMPLE_CP, patch_file(tmp_path, inner))
    assert result.returncode == 1
    assert "cannot delete an inner key in 'machine.network.interfaces.[0].vip'" in result.stderr
    assert legacy.calls(verb="patch")[-1]["rc"] == 1


# -- failures ------------------------------------------------------------------------------------


def test_unreachable_and_unknown_nodes_fail_with_unavailable(sim: TalosSim) -> None:
    sim.set_reachable(EXAMPLE_CP, False)
    for args in (("get", "machinetype", "-o", "json"), ("patch", "mc", "-p", "machine: {}")):
        result = sim.run("-n", EXAMPLE_CP, *args)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", UNAVAILABLE_CP + "\n")
    version = sim.run("-n", EXAMPLE_CP, "version")
    assert version.returncode == 1
    assert version.stderr == f"error getting version: 1 error occurred:\n\t* {EXAMPLE_CP}: {UNAVAILABLE_CP}\n\n\n"
    unknown = sim.run("-n", "192.0.2.99", "get", "links")
    assert "dial tcp 192.0.2.99:50000: connect: no route to host" in unknown.stderr


def test_injected_faults_fail_the_next_calls_then_clear(sim: TalosSim) -> None:
    sim.inject(EXAMPLE_CP, unavailable=2)
    rcs = [sim.run("-n", EXAMPLE_CP, "get", "machinetype", "-o", "json").returncode for _ in range(3)]
    assert rcs == [1, 1, 0]
    sim.inject(EXAMPLE_CP, message="rpc error: code = DeadlineExceeded desc = context deadline exceeded")
    timed_out = sim.run("-n", EXAMPLE_CP, "get", "links", "-o", "json")
    assert timed_out.stderr == "rpc error: code = DeadlineExceeded desc = context deadline exceeded\n"


def test_unknown_command_and_flag_exit_1(sim: TalosSim) -> None:
    cmd = sim.run("-n", EXAMPLE_CP, "frobnicate")
    assert cmd.returncode == 1 and cmd.stderr.startswith('unknown command "frobnicate" for "talosctl"\n')
    flag = sim.run("-n", EXAMPLE_CP, "get", "links", "--colour")
    assert flag.returncode == 1 and flag.stderr.startswith("unknown flag: --colour\n")
    mode = sim.run("-n", EXAMPLE_CP, "patch", "mc", "-p", "machine: {}", "--mode", "later")
    assert 'invalid argument "later" for "-m, --mode" flag' in mode.stderr
    assert sim.run("get", "links").stderr.startswith("nodes are not set for the command")
    widgets = sim.run("-n", EXAMPLE_CP, "get", "widgets").stderr
    assert widgets.endswith('rpc error: code = NotFound desc = resource "widgets" is not registered\n')
    # a 1.13.0 node behind a 1.13.9 talosctl: the client's version check warns first, as the real one does
    assert widgets.startswith(f"WARNING: {EXAMPLE_CP}: server version 1.13.0 is older than client version 1.13.9\n")


# -- VIP runtime ---------------------------------------------------------------------------------


def test_vip_election_keeps_one_holder_and_follows_a_move(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "sim", Lab.three_cp("v1.13.0"))
    cps = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    vip = patch_file(tmp_path, NEW_FORM_VIP)
    result = sim.run("-n", ",".join(cps), "patch", "mc", "--patch", vip, "--mode", "no-reboot")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Applied configuration without a reboot") == 3

    def holders() -> list[str]:  # through the Python API: same data as `get addresses`, no process
        return [n for n in cps if f"ens18/{EXAMPLE_VIP}/32" in sim.addresses(n)]

    assert [n for n in cps if f"ens18/{EXAMPLE_VIP}/32" in address_ids(sim, n)] == [cps[0]]
    sim.set_holder(cps[1])  # a failover
    assert holders() == [cps[1]]
    # taking the VIP off the holder moves it to the first node that still has it
    delete = f"apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\n$patch: delete\n"
    assert patch(sim, cps[1], patch_file(tmp_path, delete, "del.yaml")).returncode == 0
    assert holders() == [cps[0]]
    with pytest.raises(ValueError, match="cannot hold"):
        sim.set_holder(cps[1])


def test_vip_needs_etcd_and_can_be_slow_to_show(sim: TalosSim, tmp_path: Path) -> None:
    sim.set_etcd_bootstrapped(False)
    assert patch(sim, EXAMPLE_CP, patch_file(tmp_path, NEW_FORM_VIP)).returncode == 0
    assert sim.holder() is None
    sim.set_etcd_bootstrapped(True)
    assert sim.holder() == EXAMPLE_CP
    sim.delay_vip(2)
    seen = [f"ens18/{EXAMPLE_VIP}/32" in address_ids(sim, EXAMPLE_CP) for _ in range(3)]
    assert seen == [False, False, True]


def test_parallel_calls_all_land_in_the_call_log(sim: TalosSim) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: sim.run("-n", EXAMPLE_CP, "get", "nodename", "-o", "json"), range(6)))
    assert all(r.returncode == 0 for r in results)
    assert len(sim.calls(verb="get", node=EXAMPLE_CP)) == 6
    assert sim.calls()[0]["argv"] == ["-n", EXAMPLE_CP, "get", "nodename", "-o", "json"]


def test_the_fixture_puts_talosctl_on_path(talos_sim_factory: Any) -> None:
    sim = talos_sim_factory()
    found = subprocess.run(["talosctl", "-n", EXAMPLE_CP, "get", "machinetype", "-o", "json"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert found.returncode == 0 and stream(found.stdout)[0]["spec"] == "controlplane"
    assert sim.calls(verb="get")


@pytest.fixture
def talos_sim_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plugin's `talos_sim` factory under another name, so this file works before and after the
    plugin is registered in conftest.py."""
    return sim_factory(tmp_path, monkeypatch)
