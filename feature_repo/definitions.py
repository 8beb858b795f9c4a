"""Feast definitions of the flap features, for the `feast` CLI.

They are built by :func:`bgp_orchestrator.flaps.feature_store.definitions`, the
function the stack applies at `bgpo up`, so the CLI and the stack never
disagree. The offline source is ``$BGPO_DATA_DIR/features/flap/``.
"""

from bgp_orchestrator.flaps.feature_store import definitions
from bgp_orchestrator.settings import Settings

peer_session, session_flap_features = definitions(Settings())
