"""The local control plane (etcd + kube-apiserver) used by `trailctl up` and the tests."""
