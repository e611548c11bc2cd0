// Command injector is Dapr's sidecar injector (a mutating webhook that adds
// daprd to annotated pods), built unchanged. Only the kind cluster built here
// needs it (lab_env/stack/provision/kind_build.py).
package main

import "github.com/dapr/dapr/cmd/injector/app"

func main() { app.Run() }
