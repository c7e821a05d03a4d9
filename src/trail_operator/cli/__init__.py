"""`trailctl`: wires the components into processes."""
