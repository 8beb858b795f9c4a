"""What each tenant used, per day, counted by the system itself (see :mod:`.recorder`)."""
