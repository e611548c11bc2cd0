// Command daprd is the Dapr sidecar with only the components the labs use.
//
// dapr's stock build links every component (hundreds of cloud SDKs, several
// not on the Go module proxy). Here the stock component list is swapped out
// at build time (see overlay/components_empty.go and lab_env/provision/dapr.py)
// and the few we need are registered below, before the runtime starts.
package main

import (
	"github.com/dapr/dapr/cmd/daprd/app"

	_ "labenv.local/daprbuild/daprd/components"
)

func main() {
	app.Run()
}
