// Stands in for dapr's cmd/daprd/components/zz_notag.go at build time, so the
// stock component package compiles empty instead of panicking; our own
// daprd/components package registers what the labs need.
package components
