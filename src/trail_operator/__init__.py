"""trail-operator: CloudTrail for Kubernetes."""
