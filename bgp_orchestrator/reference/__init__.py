"""Reference data the detectors judge against: bogons, RPKI VRPs, AS relationships.

Every loader validates the whole file before it is used and says which line is
wrong; a detector keeps its previous data when a reload fails.
"""
