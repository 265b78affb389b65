"""kubeemu: a small Kubernetes API emulator over real HTTP, for the Python client and real helm.

    with KubeEmulator(token="t") as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        ...  # point the client / helm at it, then inspect emu.log, emu.get(...), emu.inject_fault(...)
"""

from .admission import AdmissionHook, AdmissionRequest
from .errors import ApiError
from .kubeconfig import write_kubeconfig
from .resources import ResourceType
from .scheduling import Scheduler
from .server import KubeEmulator
from .traffic import LoggedRequest

__all__ = [
    "AdmissionHook",
    "AdmissionRequest",
    "ApiError",
    "KubeEmulator",
    "LoggedRequest",
    "ResourceType",
    "Scheduler",
    "write_kubeconfig",
]
