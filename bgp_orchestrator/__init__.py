"""BGP Orchestrator: peering management and routing-conflict detection.

The domain modules of this package (model, peering, storage, api, local) never
import Ray; Ray is only touched by the thin adapters in ``stack`` and ``cli``.
"""

__version__ = "0.1.0"
