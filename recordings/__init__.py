"""Recording snapshots to a file and replaying them as a snapshot source."""
