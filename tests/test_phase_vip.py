"""Phase vip through the real `labup` command, with the talosctl simulator on PATH.

Each lab.yaml is written from the simulated lab (192.0.2.x), with a fast retry policy and a short
VIP wait. Every run's output, and every file labup wrote, is searched for the simulator's secret
marker: the machine config must never leave labup's memory.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import example_data, run_labup, shown
from talos_sim import SECRET_MARKER, Lab, yamlio
from talos_sim.fixtures import EXAMPLE_CP, EXAMPLE_VIP, EXAMPLE_WORKER, TalosSim

ATTEMPTS = 3
WORKER_WALL = "virtual (shared) IP is not allowed on non-controlplane nodes"


class VipLab:
    """A simulated Talos lab plus a lab.yaml for it, and the labup runs made against it."""

    def __init__(self, sim: TalosSim, root: Path) -> None:
        self.sim = sim
        self.dir = root / "lab"
        self.dir.mkdir(exist_ok=True)
        self.tmp = root / "labup-tmp"  # labup's TMPDIR: its patch files must not outlive a call
        self.tmp.mkdir(exist_ok=True)
        self.path = self.dir / "lab.yaml"
        self.outputs: list[str] = []

    def write(self, *, roles: dict[str, str] | None = None, **vip: Any) -> Path:
        data = example_data()
        data["nodes"] = [{"name": n.nodename, "address": n.address,
                          "role": (roles or {}).get(n.nodename) or
                          ("controlplane" if n.machinetype in ("controlplane", "init") else "worker")}
                         for n in self.sim.read_state().nodes]
        data["vip"] = {"address": EXAMPLE_VIP, "interface": "ens18", "wait_timeout_s": 2, **vip}
        data["retry"] = {"attempts": ATTEMPTS, "initial_s": 0.01, "max_s": 0.05}
        self.path.write_text(yaml.safe_dump(data))
        return self.path

    def labup(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_labup("-c", str(self.path), *args, env={"TMPDIR": str(self.tmp)})
        self.outputs += [result.stdout, result.stderr]
        return result

    def patches(self, node: str | None = None) -> list[dict[str, Any]]:
        return self.sim.calls(verb="patch", node=node)

    def assert_no_secret_anywhere(self) -> None:
        """Not in labup's stdout/stderr, not in .labup/, not in any file it wrote, no temp file left."""
        assert not any(SECRET_MARKER in text for text in self.outputs)
        written = [p for p in [*self.dir.rglob("*"), *self.tmp.rglob("*")] if p.is_file()]
        assert self.dir / ".labup" / "journal.jsonl" in written
        for path in written:
            assert SECRET_MARKER not in path.read_text(errors="replace"), path
        assert not list(self.tmp.iterdir()), "labup left a patch file behind"


@pytest.fixture
def vip_lab(talos_sim: Callable[..., TalosSim], tmp_path: Path) -> Callable[..., VipLab]:
    def make(lab: Lab | None = None, **vip: Any) -> VipLab:
        made = VipLab(talos_sim(lab or Lab.single_cp_worker("v1.13.0")), tmp_path)
        made.write(**vip)
        return made

    return make


def journal(lab: VipLab) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (lab.dir / ".labup" / "journal.jsonl").read_text().splitlines()]


# -- the new form (Talos >= 1.12) -----------------------------------------------------------------


def test_new_form_dry_run_apply_twice_and_rollback(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab()
    sim = lab.sim
    original = {a: sim.config_text(a) for a in (EXAMPLE_CP, EXAMPLE_WORKER)}

    dry = lab.labup("phase", "vip", "--dry-run", "--diff")
    assert dry.returncode == 0, dry.stderr
    assert lab.patches() == []
    assert "would-change vip/talos-unw-ifc" in shown(dry)
    assert "+kind: Layer2VIPConfig\n" in shown(dry) and f"+name: {EXAMPLE_VIP}\n" in shown(dry)
    assert f"talos-worker-1 ({EXAMPLE_WORKER}) is a worker: no VIP patch" in shown(dry)
    assert WORKER_WALL in shown(dry)
    assert not (lab.dir / ".labup").exists()

    first = lab.labup("--json", "phase", "vip")
    assert first.returncode == 0, first.stderr
    assert [c["nodes"] for c in lab.patches()] == [[EXAMPLE_CP]]  # the worker is never sent a patch
    assert "--mode" in lab.patches()[0]["argv"] and "no-reboot" in lab.patches()[0]["argv"]
    assert sim.config_of(EXAMPLE_CP)[-1] == {"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig",
                                             "name": EXAMPLE_VIP, "link": "ens18"}
    assert sim.config_text(EXAMPLE_WORKER) == original[EXAMPLE_WORKER]
    steps = {s["step"]: s for s in json.loads(first.stdout)["steps"]}
    assert steps["talos-unw-ifc"]["status"] == "changed"
    assert steps["talos-worker-1"]["status"] == "ok"
    assert steps["holder"]["summary"] == f"the VIP {EXAMPLE_VIP} is held by talos-unw-ifc ({EXAMPLE_CP}) on ens18"
    undo = next(e["undo"] for e in journal(lab) if e["event"] == "applied")
    assert undo == {"node": EXAMPLE_CP, "name": "talos-unw-ifc", "form": "document", "vip": EXAMPLE_VIP,
                    "link": "ens18", "created_entry": False}

    sim.clear_calls()
    second = lab.labup("phase", "vip")
    assert second.returncode == 0, second.stderr
    assert lab.patches() == []  # converged: no write at all
    assert "already carries the VIP" in shown(second)

    back = lab.labup("rollback", "vip", "--yes")
    assert back.returncode == 0, back.stderr
    assert "removed the Layer2VIPConfig document" in shown(back)
    assert {a: sim.config_text(a) for a in original} == original
    assert sim.holder() is None
    lab.assert_no_secret_anywhere()


# -- the legacy form (Talos <= 1.11) --------------------------------------------------------------


def test_legacy_form_keeps_dhcp_and_rolls_back_to_the_original(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(Lab.single_cp_worker("v1.11.5"))
    sim = lab.sim
    original = sim.config_text(EXAMPLE_CP)

    result = lab.labup("-v", "phase", "vip")
    assert result.returncode == 0, result.stderr
    v1 = sim.config_of(EXAMPLE_CP)[0]
    assert v1["machine"]["network"]["interfaces"] == [
        {"interface": "ens18", "dhcp": True, "vip": {"ip": EXAMPLE_VIP}}]
    assert f"ens18/{EXAMPLE_CP}/24" in sim.addresses(EXAMPLE_CP)  # DHCP kept: the node keeps its address
    assert sim.holder() == EXAMPLE_CP
    assert all("Layer2VIPConfig" not in p for c in lab.patches() for p in c["patches"])

    back = lab.labup("rollback", "vip", "--yes")
    assert back.returncode == 0, back.stderr
    assert "removed the machine.network.interfaces entry for ens18" in shown(back)
    assert sim.config_text(EXAMPLE_CP) == original
    lab.assert_no_secret_anywhere()


def test_legacy_form_merges_into_the_operators_entry(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(Lab.single_cp_worker("v1.11.5"))
    sim = lab.sim
    with sim.edit() as state:  # the operator already lists ens18, with keys of their own
        node = state.node(EXAMPLE_CP)
        docs = yaml.safe_load_all(node.config)
        v1 = next(docs)
        v1["machine"]["network"] = {"interfaces": [{"interface": "ens18", "dhcp": True, "mtu": 1500}]}
        node.config = yamlio.dump(v1)  # the simulator's canonical encoding, as a node would store it
    original = sim.config_text(EXAMPLE_CP)

    dry = lab.labup("phase", "vip", "--dry-run", "--diff")
    assert dry.returncode == 0, dry.stderr
    assert " ip: 192.0.2.250" in shown(dry) and "+        vip:" in shown(dry)
    assert "         mtu: 1500" in shown(dry)  # context: the entry's own keys, unchanged

    assert lab.labup("phase", "vip").returncode == 0
    sent = lab.patches(EXAMPLE_CP)[0]["patches"][0]
    assert "dhcp" not in sent  # merged: only `interface` and `vip` are sent
    assert sim.config_of(EXAMPLE_CP)[0]["machine"]["network"]["interfaces"] == [
        {"interface": "ens18", "dhcp": True, "mtu": 1500, "vip": {"ip": EXAMPLE_VIP}}]

    back = lab.labup("rollback", "vip", "--yes")
    assert back.returncode == 0, back.stderr
    assert sim.config_text(EXAMPLE_CP) == original


# -- three control planes -------------------------------------------------------------------------


def test_three_control_planes_each_get_the_vip_and_one_holds_it(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(Lab.three_cp("v1.13.0", with_worker=True))
    lab.sim.delay_vip(3 + 2)  # pre-flight reads each node's addresses (3), then labup waits (2)
    result = lab.labup("--json", "phase", "vip")
    assert result.returncode == 0, result.stderr
    cps = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert sorted(n for c in lab.patches() for n in c["nodes"]) == cps
    assert lab.patches("192.0.2.127") == []
    holder = lab.sim.holder()
    assert holder in cps
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["holder"]["status"] == "changed"  # it had to wait
    name = {a: f"talos-cp-{i}" for i, a in enumerate(cps, 1)}[holder]
    assert f"the VIP {EXAMPLE_VIP} came up on {name} ({holder}) on ens18 after" in shown(result)

    lab.sim.clear_calls()
    assert lab.labup("phase", "vip").returncode == 0
    assert lab.patches() == []


# -- pre-flight: nothing is written ---------------------------------------------------------------


def test_a_role_that_contradicts_talos_stops_before_any_write(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab()
    lab.write(roles={"talos-worker-1": "controlplane"})
    result = lab.labup("phase", "vip")
    assert result.returncode == 1
    assert (f"talos-worker-1 ({EXAMPLE_WORKER}): lab.yaml says role: controlplane, Talos says worker"
            in shown(result))
    assert "set nodes[1].role: worker" in shown(result)
    assert lab.patches() == []

    three = vip_lab(Lab.three_cp("v1.13.0"))
    three.write(roles={"talos-cp-3": "worker"})
    other = three.labup("phase", "vip")
    assert other.returncode == 1
    assert "talos-cp-3 (192.0.2.13): lab.yaml says role: worker, Talos says controlplane" in shown(other)
    assert three.patches() == []


def test_a_wrong_interface_names_the_links_that_exist(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(interface="eth0")
    result = lab.labup("phase", "vip")
    assert result.returncode == 1
    assert "vip.interface: link 'eth0' does not exist on talos-unw-ifc" in shown(result)
    assert "its links: ens18 (ether, up)" in shown(result)
    assert lab.patches() == []


def test_a_vip_already_on_another_link_is_not_moved(vip_lab: Callable[..., VipLab], tmp_path: Path) -> None:
    lab = vip_lab()
    fragment = tmp_path / "other.yaml"
    fragment.write_text(f"apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\nlink: ens19\n")
    assert lab.sim.run("-n", EXAMPLE_CP, "patch", "mc", "--patch", f"@{fragment}").returncode == 0
    lab.sim.clear_calls()
    result = lab.labup("phase", "vip")
    assert result.returncode == 1
    assert "already configured on link 'ens19'" in shown(result) and "labup will not move it" in shown(result)
    assert lab.patches() == []


def test_an_unreachable_node_is_retried_then_fails_clearly(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab()
    lab.sim.set_reachable(EXAMPLE_CP, False)
    result = lab.labup("phase", "vip")
    assert result.returncode == 1
    assert lab.patches() == []
    reads = [c for c in lab.sim.calls(verb="get", node=EXAMPLE_CP) if "machineconfig" in c["argv"]]
    assert len(reads) == ATTEMPTS  # retried, then given up (each fact, read concurrently)
    assert "pre-flight failed, nothing was changed: cannot read talos-unw-ifc (192.0.2.253)" in shown(result)
    assert "code = Unavailable" in shown(result) and "no route to host" in shown(result)
    assert "attempt 1 failed" in shown(result)

    lab.sim.clear_calls()
    dry = lab.labup("phase", "vip", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "unknown      vip/talos-unw-ifc" in shown(dry) and "no route to host" in shown(dry)


def test_a_node_that_comes_back_is_patched(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab()
    lab.sim.inject(EXAMPLE_CP, unavailable=2)
    result = lab.labup("phase", "vip")
    assert result.returncode == 0, result.stderr
    assert "attempt 1 failed" in shown(result)
    # the two failures fall on whichever facts were asked first (they are read concurrently); each
    # read that failed was retried, and the config was read again after the patch
    reads = lab.sim.calls(verb="get", node=EXAMPLE_CP)
    assert sum(c["rc"] == 1 for c in reads) == 2
    configs = [c["rc"] for c in reads if "machineconfig" in c["argv"]]
    assert configs[-2:] == [0, 0]
    assert len(lab.patches(EXAMPLE_CP)) == 1


def test_without_talosctl_dry_run_is_unknown_and_apply_stops(vip_lab: Callable[..., VipLab],
                                                            no_outside_tools: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    lab = vip_lab()
    monkeypatch.setenv("PATH", os.environ["PATH"].replace(f"{lab.sim.bin_dir}{os.pathsep}", ""))
    dry = lab.labup("phase", "vip", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "unknown      vip/talos-unw-ifc" in shown(dry)
    assert "state could not be read: talosctl not found on PATH" in shown(dry) and "hint: install it" in shown(dry)
    apply = lab.labup("phase", "vip")
    assert apply.returncode == 1
    assert "pre-flight failed, nothing was changed: talosctl not found on PATH" in shown(apply)


# -- the wait, and rollback on failure ------------------------------------------------------------


def test_a_rollback_that_cannot_reach_the_node_says_how_to_finish(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab()
    original = lab.sim.config_text(EXAMPLE_CP)
    assert lab.labup("phase", "vip").returncode == 0
    lab.sim.set_reachable(EXAMPLE_CP, False)
    lab.sim.clear_calls()
    stuck = lab.labup("rollback", "vip", "--yes")
    assert stuck.returncode == 3  # the rollback did not complete
    assert len(lab.sim.calls(verb="get", node=EXAMPLE_CP)) == ATTEMPTS and lab.patches() == []
    assert "when 192.0.2.253 answers again, run `labup rollback vip`" in shown(stuck)
    lab.sim.set_reachable(EXAMPLE_CP, True)
    done = lab.labup("rollback", "vip", "--yes")  # the journal still owns the change: the next rollback finishes
    assert done.returncode == 0, done.stderr
    assert lab.sim.config_text(EXAMPLE_CP) == original


def test_a_vip_that_never_comes_up_is_explained_and_rolled_back(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(wait_timeout_s=0.5)
    lab.sim.set_etcd_bootstrapped(False)
    original = lab.sim.config_text(EXAMPLE_CP)
    result = lab.labup("phase", "vip")
    assert result.returncode == 1
    assert f"no control-plane node announced the VIP {EXAMPLE_VIP} within 0.5s" in shown(result)
    assert "etcd not bootstrapped" in shown(result) and "talosctl -n 192.0.2.253 bootstrap" in shown(result)
    assert "undone       vip/talos-unw-ifc" in shown(result)
    assert len(lab.patches(EXAMPLE_CP)) == 2  # the VIP, then its removal
    assert lab.sim.config_text(EXAMPLE_CP) == original
    lab.assert_no_secret_anywhere()


def test_a_later_phase_failure_rolls_the_vip_back(vip_lab: Callable[..., VipLab], tmp_path: Path) -> None:
    from dataclasses import replace

    from labup.config import Retry, load
    from labup.engine.context import Context
    from labup.engine.journal import Journal, ensure_state_dir
    from labup.engine.runner import Runner
    from labup.phases import load_phase
    from labup.ui import Reporter

    from memsteps import FileStep, phase

    lab = vip_lab(Lab.single_cp_worker("v1.11.5"))
    original = lab.sim.config_text(EXAMPLE_CP)
    config = replace(load(lab.path), retry=Retry(attempts=3, initial_s=0.01, max_s=0.02, total_s=5))
    state = tmp_path / "state"
    state.mkdir()
    later = phase("later", FileStep(state, "boom", fail_apply="permanent"))
    ctx = Context(lab=config, dry_run=False, reporter=Reporter(quiet=True))
    report = Runner(ctx, [load_phase("vip"), later], "apply", Journal(ensure_state_dir(config.state_dir))).run()
    assert report.exit_code == 1
    assert ctx.facts["vip_holder"] == {"name": "talos-unw-ifc", "address": EXAMPLE_CP}
    assert [(r.phase, r.step, r.status) for r in report.undone] == [("vip", "talos-unw-ifc", "undone")]
    assert lab.sim.config_text(EXAMPLE_CP) == original
    assert lab.sim.holder() is None


# -- offline ------------------------------------------------------------------------------------


def test_render_prints_the_patch_for_each_control_plane_offline(write_lab: Callable[..., Path]) -> None:
    data = example_data()
    data["nodes"].insert(1, {"name": "talos-cp-2", "address": "192.0.2.252", "role": "controlplane"})
    result = run_labup("-c", str(write_lab(data)), "render", "vip")
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert docs == [{"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": "192.0.2.250",
                     "link": "ens18"}]
    out = result.stdout
    assert "#   talos-unw-ifc (192.0.2.253)" in out and "#   talos-cp-2 (192.0.2.252)" in out
    assert "assumes Talos >= 1.12" in out
    assert f"Workers get no VIP patch: Talos refuses it there (\"{WORKER_WALL}\")" in out
    assert "#   talos-worker-1 (192.0.2.127)" in out
    assert "#         dhcp: true" in out  # the <= 1.11 form, for reference


def test_talosctl_output_parsing() -> None:
    from labup.adapters.talos import client_tag, is_unreachable, parse_stream, talos_error_text

    version = ("Client:\n\tTag:         v1.13.9\n\tSHA:         x\nServer:\n\tNODE:        192.0.2.253\n"
               "\tTag:         v1.11.5\n\tSHA:         y\n")
    assert client_tag(version) == "v1.13.9"
    assert client_tag("Server:\n\tTag:         v1.13.9\n") is None
    assert [o["a"] for o in parse_stream('{"a": 1}\n{\n "a": 2\n}\n')] == [1, 2]
    rejected = ("WARNING: 10.0.0.21: server version 1.11.5 is older than client version 1.13.9\n"
                "patched MachineConfigs.config.talos.dev/v1alpha1 at the node 10.0.0.21\n"
                "1 error occurred:\n\t* 10.0.0.21: rpc error: code = InvalidArgument desc = 1 error occurred:\n"
                f"\t* v1alpha1.Config: 1 error occurred:\n\t* {WORKER_WALL}\n\n\n")
    text = talos_error_text(rejected)
    assert text.startswith("1 error occurred: * 10.0.0.21: rpc error: code = InvalidArgument")
    assert text.endswith(WORKER_WALL) and "patched" not in text and "WARNING" not in text
    assert not is_unreachable(text)
    wrapped = ("error getting version: 1 error occurred:\n\t* 192.0.2.253: rpc error: code = Unavailable "
               'desc = connection error: desc = "transport: Error while dialing: dial tcp 192.0.2.253:50000: '
               'connect: no route to host"\n\n\n')
    assert is_unreachable(talos_error_text(wrapped))


def test_talosctl_usage_text_is_not_part_of_the_message(tmp_path: Path) -> None:
    """FIDELITY D7: talosctl (cmd/talosctl/cmd/root.go) prints its usage after any error that mentions
    "arg(s)", "flag" or "command"; the simulator does so too, and labup keeps only the error."""
    from labup.adapters.talos import talos_error_text

    from talos_sim.fixtures import start_sim

    sim = start_sim(tmp_path / "sim")
    done = sim.run("-n", "192.0.2.253", "get", "a", "b", "c")
    assert done.returncode == 1 and "\nUsage:\n" in done.stderr and "Global Flags:" in done.stderr
    text = talos_error_text(done.stderr)
    assert text == "accepts between 1 and 2 arg(s), received 3"


def test_not_registered_hint_names_the_client_too() -> None:
    """FIDELITY D3: `"Layer2VIPConfig" "v1alpha1": not registered` also comes from a talosctl < 1.12,
    which decodes the patch itself (pkg/machinery/config/configpatcher/load.go) before any node is asked."""
    from labup.adapters.talos import _hint_for

    client_side = _hint_for('"Layer2VIPConfig" "v1alpha1": not registered') or ""
    assert "talosctl is older than 1.12" in client_side and "no node was asked" in client_side
    node_side = _hint_for('1 error occurred: * 192.0.2.10: rpc error: code = InvalidArgument desc = '
                          '"Layer2VIPConfig" "v1alpha1": not registered') or ""
    assert "this node runs Talos < 1.12" in node_side


# -- one read per fact (labup.facts.talos): each fact for all nodes in one talosctl call (`-n a,b,c`),
# whatever the lab's size; a node that fails does not hide the others. The simulator does multi-node
# `get` as talosctl does: every object tagged with its `node`; talosctl <= 1.13 prints the nodes that
# answered and an error for the others, talosctl 1.14 prints nothing when any node fails.

EXAMPLE_WORKER_3CP = "192.0.2.127"


def talos_calls(lab: VipLab) -> list[dict[str, Any]]:
    return lab.sim.calls()


def converged_calls(lab: VipLab) -> list[dict[str, Any]]:
    first = lab.labup("phase", "vip")
    assert first.returncode == 0, first.stderr
    lab.sim.clear_calls()
    again = lab.labup("--json", "phase", "vip")
    assert again.returncode == 0, again.stderr
    return talos_calls(lab)


def test_a_converged_vip_phase_asks_four_times_however_many_nodes(vip_lab: Callable[..., VipLab]) -> None:
    small = converged_calls(vip_lab(Lab.single_cp_worker("v1.13.0")))
    big = converged_calls(vip_lab(Lab.three_cp("v1.13.0", with_worker=True)))
    assert len(small) == len(big) == 4, [c["argv"][-4:] for c in big]
    verbs = sorted(" ".join(c["argv"][c["argv"].index("get"):][:2]) for c in big)
    assert verbs == ["get addresses", "get links", "get machineconfig", "get nodename"]
    assert all(len(c["nodes"]) == 4 for c in big)  # every node in the one call
    assert not any("version" in c["argv"] for c in big)  # a converged node needs no version


def test_a_patch_reads_the_version_of_all_control_planes_once(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(Lab.three_cp("v1.13.0", with_worker=True))
    result = lab.labup("phase", "vip")
    assert result.returncode == 0, result.stderr
    assert len(lab.patches()) == 3
    gets = [[*c["argv"][c["argv"].index("get"):], c["nodes"]] for c in talos_calls(lab) if "get" in c["argv"]]
    versions = [g for g in gets if g[1] == "version"]
    assert len(versions) == 1 and len(versions[0][-1]) == 4, gets


def test_an_unreachable_worker_is_retried_alone_and_named(vip_lab: Callable[..., VipLab]) -> None:
    lab = vip_lab(Lab.three_cp("v1.13.0", with_worker=True))
    lab.sim.set_reachable(EXAMPLE_WORKER_3CP, False)
    dry = lab.labup("phase", "vip", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    out = shown(dry)
    assert "would-change vip/talos-cp-1" in out and "would-change vip/talos-cp-3" in out
    assert "unknown      vip/talos-worker-1" in out and "no route to host" in out
    configs = [c for c in talos_calls(lab) if "machineconfig" in c["argv"]]
    assert len(configs[0]["nodes"]) == 4  # one call for everyone ...
    assert len(configs) >= 2 and all(c["nodes"] == [EXAMPLE_WORKER_3CP] for c in configs[1:])  # then it alone
    assert lab.patches() == []


def test_talosctl_1_14_fails_everyone_for_one_node_and_the_others_are_asked_again(
        vip_lab: Callable[..., VipLab]) -> None:
    sim_lab = Lab.three_cp("v1.13.0", with_worker=True)
    sim_lab.client_version = "v1.14.0"
    lab = vip_lab(sim_lab)
    lab.sim.set_reachable(EXAMPLE_WORKER_3CP, False)
    probe = lab.sim.run("-e", "192.0.2.11", "-n", f"192.0.2.11,{EXAMPLE_WORKER_3CP}", "get", "links", "-o", "json")
    assert probe.returncode == 1 and probe.stdout == ""  # the simulator's 1.14: nothing printed at all
    assert f"\n{EXAMPLE_WORKER_3CP}: error getting server version" in probe.stderr
    lab.sim.clear_calls()
    dry = lab.labup("phase", "vip", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    out = shown(dry)
    assert "would-change vip/talos-cp-2" in out, out
    assert "unknown      vip/talos-worker-1" in out
    configs = [c for c in talos_calls(lab) if "machineconfig" in c["argv"]]
    assert [len(c["nodes"]) for c in configs[:2]] == [4, 3]  # everyone, then the collateral three
