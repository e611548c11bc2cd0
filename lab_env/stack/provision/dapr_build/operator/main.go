// Command operator is Dapr's Kubernetes operator (components, configurations
// and subscriptions served to sidecars), built unchanged. Only the kind
// cluster built here needs it (lab_env/stack/provision/kind_build.py).
package main

import "github.com/dapr/dapr/cmd/operator/app"

func main() { app.Run() }
