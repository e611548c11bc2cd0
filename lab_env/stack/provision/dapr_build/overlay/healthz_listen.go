// Added to dapr's pkg/healthz/server at build time. Dapr 1.18.2's healthz
// server listens on every interface and ignores --healthz-listen-address;
// the lab passes the address in DAPR_HEALTHZ_LISTEN_ADDRESS (127.0.0.1), and
// the listen call is rewritten to use it (lab_env/provision/dapr.py).
package server

import "os"

var healthzListenHost = os.Getenv("DAPR_HEALTHZ_LISTEN_ADDRESS")
