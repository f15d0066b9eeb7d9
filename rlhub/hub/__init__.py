"""The hub: environments from other people's packages, run behind the capabilities they declare.

An env package ships a manifest (``rlhub.toml``, see :mod:`rlhub.hub.manifest`). ``rlhub.make`` runs an env
from an installed package in a bubblewrap sandbox (:mod:`rlhub.hub.sandbox`) as an rlhub-env/1 server and
returns a client env (:mod:`rlhub.hub.client`); ``$RLHUB_TRUST`` names packages that run in-process instead
(:mod:`rlhub.hub.isolation`).
"""

from rlhub.hub.isolation import TRUST_VARIABLE
from rlhub.hub.manifest import Capabilities, Manifest, read_manifest
from rlhub.hub.sandbox import CapabilityViolation

__all__ = ["TRUST_VARIABLE", "Capabilities", "CapabilityViolation", "Manifest", "read_manifest"]
