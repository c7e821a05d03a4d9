//go:build tools

// Package testbin records the binaries this module builds, so `go mod tidy`
// keeps their dependencies in go.sum.
package testbin

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
