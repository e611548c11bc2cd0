// Command sentry is Dapr's certificate authority (workload certificates for
// mTLS between sidecars), built unchanged.
package main

import "github.com/dapr/dapr/cmd/sentry/app"

func main() { app.Run() }
