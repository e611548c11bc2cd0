//go:build tools

// Package tools is never compiled; it makes `go mod tidy` keep the Dapr CLI
// (a main package, so it cannot be imported for real) and all of its
// dependencies in go.mod and go.sum.
package tools

import _ "github.com/dapr/cli"
