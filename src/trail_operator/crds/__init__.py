"""Custom resource models: the single source of the CRD schemas in `crds/`."""
