"""One step per node of lab.yaml: a control-plane node gets the VIP patch in the form its Talos
version wants; a worker gets nothing, and the plan says why (wall 1 of the story)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labup.adapters.talos import CONTROL_PLANE_TYPES, INSTALL_URL
from labup.engine.model import Observation, Step
from labup.errors import ConfigError, LabupError, PreflightError
from labup.vip import forms, templates
from labup.vip.survey import Survey, label, talos

if TYPE_CHECKING:
    from labup.config import Lab, Node
    from labup.engine.context import Context

WORKER_WALL = "virtual (shared) IP is not allowed on non-controlplane nodes"


def check_role(ctx: Context, survey: Survey, node: Node) -> str:
    """Talos' own machine type must agree with lab.yaml (init counts as control plane)."""
    talos_role = survey.machinetype(ctx, node)
    talos_cp = talos_role in CONTROL_PLANE_TYPES
    where = f"nodes[{ctx.lab.nodes.index(node)}]"
    if talos_role not in (*CONTROL_PLANE_TYPES, "worker"):
        raise PreflightError(f"{label(node)}: Talos reports machine type '{talos_role}', not controlplane "
                             "or worker: is the node configured yet?",
                             hint=f"apply its machine config first, or fix {where}.address")
    if talos_cp == node.is_control_plane:
        return talos_role
    if node.is_control_plane:
        raise PreflightError(
            f"{label(node)}: lab.yaml says role: controlplane, Talos says {talos_role}: the VIP goes to "
            f"control-plane nodes only (Talos refuses it on a worker: \"{WORKER_WALL}\")",
            hint=f"set {where}.role: worker in lab.yaml (or fix {where}.address if it names the wrong machine)")
    raise PreflightError(
        f"{label(node)}: lab.yaml says role: worker, Talos says {talos_role}",
        hint=f"set {where}.role: controlplane in lab.yaml (or fix {where}.address if it names the wrong "
             "machine): it should carry the VIP")


class NodeVipStep(Step):
    """The VIP patch for one control-plane node; undo removes exactly what it added."""

    def __init__(self, lab: Lab, node: Node, survey: Survey) -> None:
        self.node = node
        self.name = node.name
        self.survey = survey
        self.want = forms.Want(lab.vip.address, lab.vip.interface)

    # -- read -------------------------------------------------------------------------------------

    def _check_link(self, ctx: Context) -> None:
        """The role agrees with lab.yaml, and vip.interface is one of the node's links."""
        check_role(ctx, self.survey, self.node)
        links = self.survey.links(ctx, self.node)
        if self.want.link not in [link.name for link in links]:
            real = [link for link in links if link.type != "loopback" and link.name != "lo"]
            named = ", ".join(link.describe() for link in real) or "none but loopback"
            raise PreflightError(
                f"vip.interface: link '{self.want.link}' does not exist on {label(self.node)}; "
                f"its links: {named}",
                hint="set vip.interface in lab.yaml to the link on the nodes' LAN"
                     + (f", e.g. {real[0].name}" if real else ""))

    def _form(self, ctx: Context) -> tuple[str, str]:
        """(form, label) for a patch: read only when one is needed (a converged node needs no version)."""
        tag = self.survey.version(ctx, self.node)
        version = forms.parse_version(tag)
        if version is None:
            raise PreflightError(f"{label(self.node)}: cannot tell its Talos version from '{tag}'",
                                 hint="is talosctl talking to a Talos node?")
        problem = forms.client_problem(talos(ctx).client_version(), version, label(self.node, tag))
        if problem:
            raise PreflightError(problem, hint=f"install talosctl: {INSTALL_URL} (`talosctl version --client` "
                                               "shows yours)")
        return forms.form_for(version), label(self.node, tag)

    def _plan(self, ctx: Context) -> forms.NodePlan:
        config = self.survey.machineconfig(ctx, self.node)
        found = forms.existing(config, self.want, label(self.node))  # a VIP configured elsewhere stops here
        if found is not None:
            return found
        form, who = self._form(ctx)
        return forms.plan(config, form, self.want, who)

    def _check_subnet(self, ctx: Context) -> None:
        """A VIP outside every prefix of its link can never answer ARP there: refuse before any patch
        rather than wait out vip.wait_timeout_s and roll back."""
        import ipaddress

        vip = ipaddress.ip_address(self.want.vip)
        prefixes = []
        for address in self.survey.addresses(ctx, self.node):
            try:
                network = ipaddress.ip_interface(address.cidr).network
            except ValueError:
                continue
            host_route = network.prefixlen == network.max_prefixlen  # a VIP itself: /32, /128
            if address.link == self.want.link and network.version == vip.version and not host_route:
                prefixes.append(network)
        if prefixes and not any(vip in net for net in prefixes):
            shown = ", ".join(str(n) for n in prefixes)
            raise ConfigError("vip.address", f"{vip} is outside every prefix of {self.want.link} on "
                              f"{label(self.node)}: {shown}",
                              hint="the VIP must be a free address in the control planes' own subnet on that link")

    def preflight(self, ctx: Context) -> None:
        self.survey.prefetch(ctx)
        self._check_link(ctx)
        self._check_subnet(ctx)
        self._plan(ctx)

    def observe(self, ctx: Context) -> Observation:
        self._check_link(ctx)
        plan = self._plan(ctx)  # the snapshot's config: re-read only after this run patched the node
        if plan.converged:
            self.survey.configured.add(self.node.address)
        return Observation(plan.converged, plan.summary, diff=plan.diff, data={"plan": plan})

    def offline_plan(self, ctx: Context) -> str | None:
        patch = templates.dump(templates.load("layer2vip.yaml", vip=self.want.vip, link=self.want.link))
        return (f"the patch for Talos >= 1.12 (a node on <= 1.11 gets the interfaces form; "
                f"`labup render vip` shows both):\n{patch}")

    # -- write ------------------------------------------------------------------------------------

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        plan: forms.NodePlan = seen.data["plan"]
        assert plan.fragment is not None  # not converged: there is a patch
        try:
            talos(ctx).patch(self.node.address, plan.fragment)
        finally:  # even a failed patch may have reached the node: read it again next time
            self.survey.patched(ctx, self.node)
        # journaled: which VIP, where and in which form; never the config
        return {"node": self.node.address, "name": self.node.name, "form": plan.form,
                "vip": self.want.vip, "link": self.want.link, "created_entry": plan.created_entry}

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        """The node, the VIP and the link must be lab.yaml's: a patch goes to no other node."""
        wanted = {"node": self.node.address, "name": self.node.name, "vip": self.want.vip, "link": self.want.link}
        for key, value in wanted.items():
            if data.get(key) != value:
                return f"its {key} is {data.get(key)!r}, not this lab's {value!r}"
        if data.get("form") not in (forms.DOCUMENT, forms.INTERFACE):
            return f"its patch form {data.get('form')!r} is not one labup writes"
        return None

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        adapter = talos(ctx)
        try:
            config = adapter.machineconfig(data["node"])  # still there? deleting an absent path fails
            fragment, done = forms.rollback(config, data)
            del config
            if fragment is not None:
                try:
                    adapter.patch(data["node"], fragment)
                finally:
                    self.survey.patched(ctx, self.node)
        except LabupError as exc:  # same error (a transient one is still retried), with the way out
            by_hand = (f"when {data['node']} answers again, run `labup rollback vip`; by hand: remove the "
                       f"VIP {data['vip']} from its config (phases/vip/ has the rollback patches)")
            exc.hint = f"{exc.hint}; {by_hand}" if exc.hint else by_hand
            raise
        return done


class WorkerStep(Step):
    """A worker never gets a VIP patch; its role is still checked against Talos."""

    def __init__(self, node: Node, survey: Survey) -> None:
        self.node = node
        self.name = node.name
        self.survey = survey

    def preflight(self, ctx: Context) -> None:
        check_role(ctx, self.survey, self.node)

    def observe(self, ctx: Context) -> Observation:
        check_role(ctx, self.survey, self.node)
        return Observation(True, self._why())

    def _why(self) -> str:
        return (f"{label(self.node)} is a worker: no VIP patch. The VIP belongs on control-plane nodes "
                f"only: Talos refuses it on a worker (\"{WORKER_WALL}\"), or from 1.12 accepts the "
                "document but never brings the VIP up")

    def offline_plan(self, ctx: Context) -> str | None:
        return self._why()

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        raise AssertionError("a worker is never sent a VIP patch")
