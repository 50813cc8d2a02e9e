//go:build !amd64 && !arm64

package kvm

// archLayoutTable: no arch-specific mirrors are built on this architecture.
var archLayoutTable []layoutEntry
